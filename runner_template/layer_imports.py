"""Imports from the workflow's module layer, beside the compiled program.

The shared program (``--compiler nuitka``) carries the engine and the standard library it needs;
the modules a workflow's tools import beyond that (bytecode, extension modules, installed
wheels) come as an image layer into the program's folder (``rules/stages/modules_layer.py``).
A top-level module there is found by the normal path finder (the folder is on ``sys.path``), but
a submodule of a package the program has compiled in (``email.mime`` beside a compiled
``email``) is not: Nuitka's path hook claims the package's folder first and knows only what it
compiled. :func:`install` adds one finder after all others that looks in those folders the way
CPython does, so a module the program lacks is found in the layer and nothing else changes.

The program's standard library beyond its binary is a zip on ``sys.path``
(``rules/stages/program_stdlib.py``), the layer's is another (``layer.zip``), and a package is
split between the places: a package from the program's zip (``email``) may have a submodule in
the layer's zip (``email.mime``) or folder (a wheel's), and a
package in the binary (``importlib``, ``encodings``) has its other submodules in the zip
(``importlib.util``, ``encodings.idna``). The finder looks in the other place, its twin, too;
for a package with an empty ``__path__`` (``encodings`` comes frozen) in the folder and the zip
below each ``sys.path`` entry that its name gives.
"""

from __future__ import annotations

import sys
import zipimport
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
    """A meta-path finder over plain file finders and zip importers: the last resort of every
    import."""

    def __init__(self) -> None:
        self._finders: dict[str, FileFinder | zipimport.zipimporter | None] = {}

    def find_spec(self, name, path=None, target=None):
        zips = [entry for entry in sys.path if isinstance(entry, str) and entry.endswith(".zip")]
        entries = list(path) if path is not None else list(sys.path)
        if path is not None and not entries and "." in name:
            # A package with no folder of its own (the frozen ``encodings``): its submodules
            # are where its name says, below the program's folders.
            parent = name.rpartition(".")[0].replace(".", "/")
            entries = [f"{entry}/{parent}" for entry in sys.path if isinstance(entry, str)]
        for entry in entries:
            if not isinstance(entry, str):
                continue
            for place in (entry, *_twins(entry, zips)):
                finder = self._finder(place, zips)
                spec = finder.find_spec(name, target) if finder is not None else None
                if spec is not None and spec.loader is not None:
                    return spec
        return None

    def _finder(self, place: str, zips: list[str]) -> FileFinder | zipimport.zipimporter | None:
        if place not in self._finders:
            if any(place == z or place.startswith(z + "/") for z in zips):
                try:
                    self._finders[place] = zipimport.zipimporter(place)
                except zipimport.ZipImportError:
                    self._finders[place] = None
            else:
                self._finders[place] = FileFinder(place, *_LOADERS)
        return self._finders[place]

    def invalidate_caches(self) -> None:
        self._finders.clear()


def _twins(entry: str, zips: list[str]) -> list[str]:
    """The same package folder in the other places: a zip's ``Z/pkg`` is the folder's
    ``dirname(Z)/pkg`` and every other zip's ``Z2/pkg``, and the other way round."""
    if entry in zips:
        return []
    for base in [*zips, *(archive.rpartition("/")[0] for archive in zips)]:
        if entry.startswith(base + "/"):
            rest = entry[len(base) :]
            folders = {archive.rpartition("/")[0] for archive in zips}
            return [place + rest for place in [*zips, *sorted(folders)] if place != base]
    return []


def install() -> None:
    """Add the layer's finder once, after every other finder."""
    if not any(isinstance(finder, LayerFinder) for finder in sys.meta_path):
        sys.meta_path.append(LayerFinder())
