"""BigEarthNet.txt: Sentinel-1/Sentinel-2 patches paired with captions, questions, referring boxes.

Read side of the project: schema, annotation parsers, loaders, collate functions, evaluation.
It never imports the write side (``bigearthnet_txt.conversion``).
"""

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": "bigearthnet_txt.loading",
    "with_imagery": "bigearthnet_txt.loading",
    "split_by_node": "bigearthnet_txt.loading",
    "LoadConfig": "bigearthnet_txt.load_config",
    "JoinedDataset": "bigearthnet_txt.joined_dataset",
    "StreamedDataset": "bigearthnet_txt.streamed_dataset",
    "ImageryJoin": "bigearthnet_txt.imagery_join",
    "BigEarthNetTxt": "bigearthnet_txt.random_access",
    "card_configs": "bigearthnet_txt.configs",
    "row_filter": "bigearthnet_txt.filters",
    "ImageryStore": "bigearthnet_txt.store",
    "Collator": "bigearthnet_txt.collate",
    "ChatCollator": "bigearthnet_txt.chat_collate",
    "Augmenter": "bigearthnet_txt.augment",
    "TextTokenizer": "bigearthnet_txt.tokenize",
    "WeightedFeatureAggregation": "bigearthnet_txt.pooling",
    "PatchBatchSampler": "bigearthnet_txt.sampler",
    "GroupedStream": "bigearthnet_txt.grouped_stream",
    "retrieval_metrics": "bigearthnet_txt.retrieval",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Public API, imported on first use (``import bigearthnet_txt`` stays light: no datasets,
    no torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bigearthnet_txt' has no attribute {name!r}")
