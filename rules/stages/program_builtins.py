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

``unicodedata`` (1.1 MB, the largest) is dropped too, though modules the engine has import it
(:data:`UNUSED_PATHS`): CPython's ``socket.getaddrinfo`` and ``gethostbyaddr`` encode every
host name given as ``str`` with the ``idna`` codec, ASCII or not, and ``encodings.idna`` imports
``stringprep`` and ``unicodedata``. The engine never takes those paths: its HTTP client resolves
a host as ASCII bytes (``runner_template/http_client.py``), serve mode binds without
``socket.getfqdn``, and a workflow that runs Python code of its own, or calls https, gets
``unicodedata`` in its layer (``rules/stages/modules_layer.py``). ``zlib`` stays for the zip of
bytecode the program may carry.
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
# Modules the engine reaches that import a dropped built-in only on a path the engine never
# takes (the idna codec, encodings.idna with stringprep, is looked up by name: no import names
# it; the engine's HTTP client and serve mode never ask for it).
UNUSED_PATHS = {
    "unicodedata": {
        "re._parser",  # a \N{...} escape (an input pattern with one brings it: analyze.py)
        "urllib.parse",  # urlsplit of a host name that is not ASCII (http_client refuses it)
        "traceback",  # from 3.11.4 the carets under a stack line that is not ASCII (Debian's
        # 3.11.2 has no such code; the engine formats exceptions only, never a stack)
    }
}
DROPPED = frozenset(
    {"_blake2", "_md5", "_sha1", "_sha256", "_sha3"}  # hashlib's (it prefers OpenSSL's)
    | {"_elementtree", "pyexpat"}  # xml.etree and xml.parsers (and libexpat with them)
    | {"cmath", "_statistics", "spwd", "syslog", "xxsubtype"}
    | {"unicodedata"}  # 1.1 MB: the layer brings it to Python code (modules_layer)
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
