"""Which standard-library modules a workflow needs beyond the shared program's: the closure.

Roots are the top-level modules the tools import (a tool's ``import xml.etree.ElementTree`` is
recorded as ``xml`` by the analysis, so a root brings its whole package), plus ``ssl`` for an
https endpoint and the modules locked packages import. From there the closure follows the
imports of each module's source, module by module (dotted names, relative imports resolved),
and stops at whatever the program already has (Nuitka's report) or the interpreter has built in.
What it keeps is tree-shaken: a module nobody reaches stays out.

An import that cannot be met is an error naming who needs it, the import and the platform: a
root the builder's Python lacks (``tkinter`` without ``_tkinter``), or an extension module whose
shared library the builder does not have. Imports found only deep inside the standard library
that do not exist here (``_winapi`` behind ``if sys.platform == "win32"``) are skipped: Python
itself never reaches them on Linux.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rules.errors import UserError
from rules.fsutil import atomic_write
from rules.paths import cache_dir
from rules.stages import analyze
from rules.stages.analyze import dotted_imports
from rules.stages.builder_python import Stdlib

# Imported by the standard library only on other systems (behind a platform test, not in a
# try): never an error here.
OTHER_SYSTEMS = frozenset(
    {"_winapi", "_overlapped", "msvcrt", "winreg", "_winreg", "nt", "winsound", "_msi", "msilib"}
    | {"_scproxy", "_wmi", "_aix_support", "_osx_support", "java", "vms_lib", "_emscripten_info"}
)


# hashlib's own implementations of what OpenSSL's ``_hashlib`` has: with ``_hashlib`` there,
# hashlib takes md5, sha1, sha2 and sha3 from OpenSSL and imports these only for an algorithm
# OpenSSL refuses (its ``__get_builtin_constructor``, inside a function), which the image's
# OpenSSL 3 never does. ``_blake2`` is not among them: hashlib always takes blake2 from it.
# 0.1 MB on amd64, 0.27 MB on arm64 (64 KB pages), in every layer that reaches hashlib.
OPENSSL_COVERS = frozenset({"_md5", "_sha1", "_sha256", "_sha512", "_sha3"})


@cache
def _scan_rules() -> str:
    """The bytes of the import scan (``rules/stages/analyze.py``): a memo entry another scan
    wrote is another entry."""
    return hashlib.sha256(Path(analyze.__file__).read_bytes()).hexdigest()[:16]


class ImportsMemo:
    """``dotted_imports`` per source digest, kept in ``cache/.imports.json``: the standard library
    and the wheels are the same bytes for every layer, so only the first layer parses them (a
    ``requests`` closure is about 200 modules, seconds of ``ast``)."""

    def __init__(self) -> None:
        self.path = cache_dir() / ".imports.json"
        try:
            self.entries: dict[str, list[list[str]]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def imports(
        self, source: bytes, module: str, is_package: bool, stdlib: bool = False
    ) -> tuple[set[str], set[str]]:
        facts = f"\0{module}\0{is_package}\0{stdlib}\0{_scan_rules()}".encode()
        key = hashlib.sha256(source + facts).hexdigest()
        found = self.entries.get(key)
        if found is None:
            text = source.decode("utf-8", errors="replace")
            required, optional = dotted_imports(text, module, is_package, stdlib)
            found = self.entries[key] = [sorted(required), sorted(optional)]
            self.dirty = True
        return set(found[0]), set(found[1])

    def save(self) -> None:
        if self.dirty:
            atomic_write(self.path, json.dumps(self.entries).encode())
            self.dirty = False


@dataclass
class Closure:
    """What the layer brings: bytecode modules and extension modules."""

    modules: set[str] = field(default_factory=set)
    extensions: set[str] = field(default_factory=set)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def module_closure(
    roots: dict[str, list[str]],
    optional_roots: set[str],
    stdlib: Stdlib,
    program: set[str],
    platform: str,
    memo: ImportsMemo | None = None,
    packages: dict[str, tuple[bytes, bool]] | None = None,
    leave_out: frozenset[str] = frozenset(),
    builtin: frozenset[str] | None = None,
) -> Closure:
    """The modules and extensions to layer for ``roots`` (dotted module -> who imports it:
    ``tool NAME``, ``step ID``, ``an https endpoint``), given what ``program`` has and the
    program's built-in modules (``builtin``; None: all of the builder's). A built-in module of
    the builder that the program leaves out comes as an extension module like any other.

    ``packages`` (module -> source, is a package) is the locked wheels' code: the layer ships it
    whole, and the closure follows the imports of what the roots reach in it. What a package
    imports is its own concern: never an error here. Nothing in ``leave_out`` (a module and its
    submodules) is followed."""
    closure = Closure()
    memo = memo or ImportsMemo()
    packages = packages or {}
    have = program | (stdlib.builtin if builtin is None else builtin) | stdlib.preloaded
    todo: list[tuple[str, str, bool, str]] = []  # (module, who, required, root it serves)
    for root in sorted(roots, reverse=True):
        third_party = root.split(".")[0] not in sys.stdlib_module_names
        if third_party and root not in stdlib.sources and root not in packages:
            continue  # not a module of the builder or of a locked wheel (the lock says so)
        todo += [
            (name, roots[root][0], root not in optional_roots, root) for name in _parents(root)
        ]
    seen: set[str] = set()
    while todo:
        name, who, required, root = todo.pop()
        if name in seen or name in have or _left_out(name, leave_out):
            continue
        if name in packages and name not in stdlib.sources:
            seen.add(name)
            source, is_package = packages[name]
            found, maybe = memo.imports(source, name, is_package)
            for imported in sorted(found | maybe, reverse=True):
                todo += [(candidate, who, False, root) for candidate in _parents(imported)]
            continue
        if name in stdlib.extensions:
            if not _libraries_present(stdlib, name, who, root, platform, required):
                continue
            seen.add(name)
            closure.extensions.add(name)
            continue
        source = stdlib.sources.get(name)
        needs = "" if name == root.split(".")[0] else f", which needs {name}"
        if source is None and name in stdlib.builtin:  # built into the builder only
            if required:
                why = stdlib.builtin_failures.get(name) or stdlib.builtin_failures.get("*")
                raise UserError(
                    f"{who} imports {root}{needs}: the shared program leaves out the built-in"
                    f" module {name}, and the builder for {platform} could not link it as an"
                    f" extension module ({why or 'not in its Setup.local'}), so it cannot be"
                    " layered"
                )
            continue
        if source is None:
            top = "." not in name and name in sys.stdlib_module_names
            if required and top and name not in OTHER_SYSTEMS:
                raise UserError(
                    f"{who} imports {root}{needs}: the builder's Python for {platform} does not"
                    " have it (not built in, not in its standard library), so it cannot be"
                    " layered"
                )
            continue  # a name inside a module (from json import loads), or another system's
        if stdlib.bytecode(name) is None:
            if required:
                raise UserError(
                    f"{who} imports {root}, whose module {name} has no bytecode in the builder"
                    f" for {platform}: it cannot be layered"
                )
            continue
        seen.add(name)
        closure.modules.add(name)
        found, maybe = memo.imports(source.read_bytes(), name, name in stdlib.packages, True)
        for imported in sorted(found | maybe, reverse=True):
            for candidate in _parents(imported):
                todo.append((candidate, who, required and imported in found, root))
    if "_hashlib" in closure.extensions or "_hashlib" in have:
        closure.extensions -= OPENSSL_COVERS - set(roots)  # unless a tool imports one itself
    memo.save()
    return closure


def _left_out(name: str, leave_out: frozenset[str]) -> bool:
    return bool(leave_out) and any(parent in leave_out for parent in _parents(name))


def _libraries_present(
    stdlib: Stdlib, name: str, who: str, root: str, platform: str, required: bool
) -> bool:
    """Whether the extension's shared libraries are all in the builder; when not, an error
    for a required import and a skip for an optional one."""
    missing = stdlib.extensions[name]["missing"]
    if missing and required:
        raise UserError(
            f"{who} imports {root}, whose extension module {name} needs {', '.join(missing)},"
            f" which the builder for {platform} does not have: it cannot be layered"
        )
    return not missing
