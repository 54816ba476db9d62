"""Runs in the builder (python3 -X no_debug_ranges -OO): the shared program's stdlib.zip.

Reads ``[[module, source path, is_package, name in tracebacks], ...]`` as JSON on stdin (the
builder's standard library is mounted at /r, the engine at /e) and writes
``/out/stdlib.zip``: each module's bytecode (unchecked-hash pyc, so no timestamps), deflated,
the entries sorted with fixed dates and modes, so the same modules give the same bytes. The
interpreter's flags decide the bytecode: no docstrings, no asserts, no column tables, as Nuitka
writes the bytecode it keeps in the program.
"""

import importlib.util
import json
import sys
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc

DATE = (1980, 1, 1, 0, 0, 0)


def main() -> None:
    entries = json.load(sys.stdin)
    with zipfile.ZipFile("/out/stdlib.zip", "w") as archive:
        for module, path, is_package, filename in sorted(entries):
            with open(path, "rb") as handle:
                source = handle.read()
            code = compile(source, filename, "exec", dont_inherit=True, optimize=2)
            data = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
            parts = module.split(".")
            name = "/".join([*parts, "__init__.pyc"] if is_package else parts)
            if not is_package:
                name += ".pyc"
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, bytes(data), compresslevel=9)


main()
