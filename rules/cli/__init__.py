"""The ``docker-workflow`` command line: the only part of ``rules`` that prints results."""
