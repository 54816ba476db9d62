"""The ``docker-workflow`` command line: the only part of ``rules`` that prints results.

``main`` is handed on here so that the console script (``rules.cli:main``) stays what every
installation already has.
"""

from rules.cli.main import main

__all__ = ["main"]
