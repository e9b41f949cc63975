"""The ``sresformer`` command line: thin click commands over the library."""
