"""The build graph: target layout and options, the ``dodo.py`` declarations, the doit tasks, the
fingerprints of task code, and the one entry point the CLI builds through."""
