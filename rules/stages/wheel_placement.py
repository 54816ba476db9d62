"""Which of a layer's installed wheels go into ``layer.zip`` and which stay loose files.

The layer's locked wheels are installed into one folder (``modules_layer.installed_wheels``),
sourceless bytecode and package files. Read from the layer's deflated zip, a pure-Python
distribution takes about 45% of its loose bytes (``requests``, ``urllib3`` and ``idna``: 0.55 MB
less), and ``zipimport`` reads it as it reads the standard library beside it; its package data
stays readable through ``importlib.resources`` and its ``.dist-info`` through
``importlib.metadata``, both of which read zips.

A distribution stays loose when the zip would change what it does:

- it has an extension module or a bundled shared library (the loader needs a file);
- its code names ``__file__``, ``__path__``, a spec's ``origin``, ``inspect.getfile`` or a
  distribution's ``locate_file``, asks for a real path to its data
  (``importlib.resources.as_file``/``path``, ``pkg_resources``: ``certifi.where()`` would copy
  its bundle to a temporary file in every container, which a read-only root cannot take), or
  opens what ``files()`` gives as a path (``open``, ``os.fspath``);
- one of its top-level names is one of the builder's standard-library modules (a backport that
  shadows it from the folder, which comes first on ``sys.path``, would lose to the standard
  library in the zip), or another distribution's too (a namespace split across both places);
- its ``RECORD`` is missing (nothing says which files are its own).

Not seen: a path taken from another distribution's module (``dirname(other.__file__)``), which
marks the reader, not the other one.
"""

from __future__ import annotations

import ast
import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Names whose use means the code reads its own files by path: a module's file or folder, a
# spec's origin, inspect's file of an object, importlib.metadata's file of a distribution.
PATH_NAMES = frozenset(
    {"__file__", "__path__", "origin", "getfile", "getsourcefile", "locate_file"}
)
# Functions that hand out a real file for package data (the zip has none to give).
PATH_FUNCTIONS = frozenset({"as_file", "resource_filename"})
# With importlib.resources' files(), these calls take its result as a path (a zip's is not
# one); a method of some object (``xhr.open``) is not among them.
PATH_TAKERS = frozenset({"open", "io.open", "fspath", "os.fspath"})
RESOURCE_MODULES = frozenset({"importlib.resources", "importlib_resources", "pkg_resources"})


@dataclass(frozen=True)
class Placement:
    """The installed tree split in two: files for the zip, and the loose rest."""

    zipped: dict[str, bytes]  # zip member name (posix, relative to the folder) -> bytes
    zipped_distributions: tuple[str, ...]  # their .dist-info folder names
    loose: tuple[Path, ...]  # files (relative to the folder) that stay files


def needs_real_paths(source: bytes) -> bool:
    """Whether a module's code reads its own files by path (see the module's docstring). Code
    that does not parse cannot be judged, so it counts as needing them."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    uses_files = takes_paths = False
    for node in ast.walk(tree):
        named = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
        uses_files = uses_files or named == "files"
        takes_paths = takes_paths or (
            isinstance(node, ast.Call) and _dotted(node.func) in PATH_TAKERS
        )
        if isinstance(node, ast.Name) and node.id in PATH_NAMES | PATH_FUNCTIONS:
            return True
        if isinstance(node, ast.Attribute) and node.attr in PATH_NAMES | PATH_FUNCTIONS:
            return True
        resource_import = isinstance(node, ast.ImportFrom) and node.module in RESOURCE_MODULES
        if resource_import and any(a.name in PATH_FUNCTIONS | {"path"} for a in node.names):
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and "pkg_resources" in _imported(node):
            return True
        is_resources = isinstance(node, ast.Attribute) and node.attr == "path"
        if is_resources and _dotted(node.value).endswith("resources"):
            return True
    return uses_files and takes_paths


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {node.module or ""}
    return {alias.name.split(".")[0] for alias in node.names}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def wheel_modules(wheels: list[Path]) -> dict[str, tuple[bytes, bool]]:
    """Module -> (source, is a package) of the code in these wheel files, named as pip installs
    it (code under ``<dist>.data/purelib/`` or ``platlib/`` goes to the top level too)."""
    found: dict[str, tuple[bytes, bool]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in sorted(archive.namelist()):
                installed = _installed_name(name)
                if installed is None or not installed.endswith(".py"):
                    continue
                module = installed[:-3].replace("/", ".").removesuffix(".__init__")
                found[module] = (archive.read(name), installed.endswith("__init__.py"))
    return found


def path_readers(modules: dict[str, tuple[bytes, bool]]) -> set[str]:
    """The top-level names whose code (``wheel_modules``) reads its files by path."""
    return {
        module.split(".")[0] for module, (source, _) in modules.items() if needs_real_paths(source)
    }


def _installed_name(name: str) -> str | None:
    """Where pip installs a wheel member, relative to the target folder; None for metadata and
    for what goes elsewhere (scripts, headers)."""
    first, _, rest = name.partition("/")
    if first.endswith(".dist-info"):
        return None
    if first.endswith(".data"):
        kind, _, inner = rest.partition("/")
        return inner if kind in ("purelib", "platlib") and inner else None
    return name


def _record_tops(info: Path) -> set[str] | None:
    """The top-level module names a distribution installed, from its ``RECORD``."""
    record = info / "RECORD"
    if not record.is_file():
        return None
    tops: set[str] = set()
    with record.open(newline="", encoding="utf-8") as rows:
        for row in csv.reader(rows):
            first = row[0].split("/")[0] if row else ""
            if first and first != ".." and not first.endswith((".dist-info", ".data")):
                tops.add(first.split(".")[0])
    return tops


def _own_files(folder: Path, tops: set[str]) -> list[Path]:
    """Every file below ``folder`` that belongs to these top-level names: their packages'
    folders, their module files (``six.pyc``, ``_cffi_backend.cpython-311-....so``) and
    auditwheel's ``<name>.libs``."""
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.name.split(".")[0] not in tops or entry.name.endswith(".dist-info"):
            continue
        files += [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
    return files


def _is_binary(path: Path) -> bool:
    return path.suffix == ".so" or ".so." in path.name


def place_wheels(folder: Path, readers: set[str], stdlib: set[str]) -> Placement:
    """Split the installed tree in ``folder``; ``readers``: ``path_readers`` of its wheels'
    modules;
    ``stdlib``: the builder's top-level standard-library module names (not this machine's
    Python's, which may be another version)."""
    distributions = {info: _record_tops(info) for info in sorted(folder.glob("*.dist-info"))}
    claims: dict[str, int] = {}
    for tops in distributions.values():
        for top in tops or ():
            claims[top] = claims.get(top, 0) + 1
    zipped: dict[str, bytes] = {}
    names: list[str] = []
    for info, tops in distributions.items():
        if not tops:
            continue
        files = _own_files(folder, tops)
        stays = (
            any(_is_binary(path) for path in files)
            or tops & readers
            or tops & stdlib
            or any(claims[top] > 1 for top in tops)
        )
        if stays:
            continue
        for path in [*files, *sorted(p for p in info.rglob("*") if p.is_file())]:
            zipped[path.relative_to(folder).as_posix()] = path.read_bytes()
        names.append(info.name)
    loose = tuple(
        path.relative_to(folder)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() not in zipped
    )
    return Placement(zipped, tuple(names), loose)
