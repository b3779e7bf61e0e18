"""Sub-commands of the ``bigearthnet-txt`` command line (see ``conversion.cli``)."""
