"""The exception types of the package: catch :class:`BigEarthNetTxtError` for any of them.

Every class also derives from the built-in type its case used to raise, so ``except ValueError`` /
``except FileNotFoundError`` code keeps working::

    BigEarthNetTxtError                      base: a message naming what, where and what to do
    ├── InputError (ValueError)              bad input data: annotation rows, imagery files, options
    │                                        (write side: AnnotationError, ImageryInputError)
    ├── DataNotFoundError (FileNotFoundError)  no converted data set at a name or path
    ├── HubUnavailableError (ConnectionError)  a Hub repository that does not exist or cannot be
    │                                          reached (with the local reading of the name)
    ├── StoreError (ValueError)              a converted folder whose parts disagree
    └── OutputFolderError (FileExistsError)  an output folder that cannot be written
        ├── OutputFolderBusyError            another run holds the folder's lock
        └── ForeignContentError              the folder holds content this tool did not write

The messages are single lines, so the command line prints them as they are.
"""

from __future__ import annotations


class BigEarthNetTxtError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(BigEarthNetTxtError, ValueError):
    """Bad input data or options; the message names the file, row or patch and what is wrong."""


class DataNotFoundError(BigEarthNetTxtError, FileNotFoundError):
    """No converted data set where a name or path points; the message lists the places looked at."""


class HubUnavailableError(BigEarthNetTxtError, ConnectionError):
    """A Hub repository that does not exist, is not accessible or cannot be reached."""


class StoreError(BigEarthNetTxtError, ValueError):
    """A converted folder whose store, patch table or tables disagree with each other."""


class OutputFolderError(BigEarthNetTxtError, FileExistsError):
    """An output folder that this run cannot write into."""


class OutputFolderBusyError(OutputFolderError):
    """Another run holds the output folder (its lock file is locked)."""


class ForeignContentError(OutputFolderError):
    """The output folder holds content that this tool did not write."""
