"""The built-in modules the shared program leaves out of its link, and the ones it really has.

Debian's static libpython builds about thirty modules into the interpreter that other Pythons
ship as extension modules (its ``Setup.local``: ``unicodedata``, ``_elementtree``, ``pyexpat``,
the hash modules, ...), and its table of built-ins names them all, so every program linked with
it carries them. The shared program (``--compiler nuitka``, ``rules/stages/render.py``
``program/``) links its own table instead (``rules/docker/build/inittab.py``, run by
``compile.sh``), without :data:`DROPPED`: modules the engine never imports, or imports only
where the importing module has a pure-Python fallback (:data:`FALLBACK`). A tool that imports
one gets it from the module layer as an extension module, built once per builder and platform
from the same object in ``libpython3.11-pic.a`` (``rules/docker/build/builtin_extensions.py``).
The compile leaves the list of what its table keeps in the program's ``.meta/builtins``, which
the layer's closure reads as the program's built-ins (:func:`program_builtins`).
``--compiler onefile`` compiles a workflow's own engine, which keeps them all.

``unicodedata`` (1.1 MB, the largest) stays: ``socket.getaddrinfo`` encodes every host name
given as ``str`` with the ``idna`` codec, whose module imports it, so every endpoint call needs
it; and ``zlib`` stays for the zip of bytecode the program may carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # render.py reads the list when doit loads: no builder code for that
    from rules.stages.builder_python import Stdlib

DROPPED_FILE = "builtins-dropped.txt"  # in program/: compile.sh links the trimmed table
BUILTINS_META = ".meta/builtins"  # in the compiled program: the table's names, one a line

# The modules the engine imports only with a fallback: module -> the fallback's owner.
FALLBACK = {"_pickle": "pickle", "_datetime": "datetime"}
DROPPED = frozenset(
    {"_blake2", "_md5", "_sha1", "_sha256", "_sha3"}  # hashlib's (it prefers OpenSSL's)
    | {"_elementtree", "pyexpat"}  # xml.etree and xml.parsers (and libexpat with them)
    | {"cmath", "_statistics", "spwd", "syslog", "xxsubtype"}
    | set(FALLBACK)
)


def dropped_file() -> bytes:
    """``program/builtins-dropped.txt``: the names :data:`DROPPED`, one a line."""
    return "".join(f"{name}\n" for name in sorted(DROPPED)).encode()


def program_builtins(program: Path, stdlib: Stdlib) -> frozenset[str]:
    """The built-in modules of a compiled program: what its table keeps, or the builder's
    (a program linked with the archive's own table has them all)."""
    listed = program / BUILTINS_META
    if not listed.is_file():
        return stdlib.builtin
    return frozenset(line for line in listed.read_text().splitlines() if line)
