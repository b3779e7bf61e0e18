"""BigEarthNet.txt: Sentinel-1/Sentinel-2 patches paired with captions, questions and referring boxes.

Read side of the project: schema, annotation parsers, loaders, collate functions, evaluation.
It never imports the write side (``conversion``).
"""

__version__ = "0.1.0"
