"""Imports from the workflow's module layer, beside the compiled program.

The shared program (``--compiler nuitka``) carries the engine and the standard library it needs;
the modules a workflow's tools import beyond that (bytecode, extension modules, installed
wheels) come as an image layer into the program's folder (``rules/stages/modules_layer.py``).
A top-level module there is found by the normal path finder (the folder is on ``sys.path``), but
a submodule of a package the program has compiled in (``email.mime`` beside a compiled
``email``) is not: Nuitka's path hook claims the package's folder first and knows only what it
compiled. :func:`install` adds one finder after all others that looks in those folders the way
CPython does, so a module the program lacks is found in the layer and nothing else changes.
"""

from __future__ import annotations

import sys
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    SourceFileLoader,
    SourcelessFileLoader,
)

_LOADERS = (
    (ExtensionFileLoader, EXTENSION_SUFFIXES),
    (SourceFileLoader, SOURCE_SUFFIXES),
    (SourcelessFileLoader, BYTECODE_SUFFIXES),
)


class LayerFinder:
    """A meta-path finder over plain file finders: the last resort of every import."""

    def __init__(self) -> None:
        self._finders: dict[str, FileFinder] = {}

    def find_spec(self, name: str, path=None, target=None):
        for entry in list(path) if path is not None else list(sys.path):
            if not isinstance(entry, str):
                continue
            finder = self._finders.get(entry)
            if finder is None:
                finder = self._finders[entry] = FileFinder(entry, *_LOADERS)
            spec = finder.find_spec(name, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None

    def invalidate_caches(self) -> None:
        self._finders.clear()


def install() -> None:
    """Add the layer's finder once, after every other finder."""
    if not any(isinstance(finder, LayerFinder) for finder in sys.meta_path):
        sys.meta_path.append(LayerFinder())
