"""Runs in the builder (python3 -X no_debug_ranges -OO): the bytecode of the shared program's
stdlib.zip.

Reads ``[[module, source path, is_package, name in tracebacks], ...]`` as JSON on stdin (the
builder's standard library is mounted at /r, the engine at /e) and writes each module's
bytecode (unchecked-hash pyc, so no timestamps) to ``/out/<its path in the zip>``; the host
zips them (rules/stages/modules_layer.py ``write_zip``). The interpreter's flags decide the
bytecode: no docstrings, no asserts, no column tables, as Nuitka writes the bytecode it keeps
in the program.
"""

import importlib.util
import json
import os
import sys
from importlib._bootstrap_external import _code_to_hash_pyc


def main() -> None:
    for module, path, is_package, filename in json.load(sys.stdin):
        with open(path, "rb") as handle:
            source = handle.read()
        code = compile(source, filename, "exec", dont_inherit=True, optimize=2)
        data = _code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False)
        parts = module.split(".")
        member = "/".join([*parts, "__init__.pyc"]) if is_package else "/".join(parts) + ".pyc"
        target = os.path.join("/out", member)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(bytes(data))


main()
