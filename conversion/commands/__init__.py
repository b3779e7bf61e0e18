"""Sub-commands of the ``bigearthnet-txt`` command line (see ``bigearthnet_txt.conversion.cli``)."""
