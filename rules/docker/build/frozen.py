"""Write the shared program's table of frozen modules: importlib's bootstrap and ``zipimport``
as marshalled bytecode, and none of Debian's deep-frozen code objects.

Runs inside the builder before the compile (``compile.sh``): ``python3 frozen.py OUT_DIR``.
Python 3.11's static libpython defines its frozen tables in ``frozen.o``
(``_PyImport_FrozenBootstrap``, ``_PyImport_FrozenStdlib``, ``_PyImport_FrozenTest``,
``_PyImport_FrozenAliases``, ``PyImport_FrozenModules``), whose entries point at the
``_Py_get_*_toplevel`` functions of ``deepfreeze.o``: 23 modules as ready-made static code
objects, 0.93 MB of code and data, with ``_Py_Deepfreeze_Init``/``_Py_Deepfreeze_Fini``, which
``pylifecycle.o`` calls. A Nuitka standalone program sets ``use_frozen_modules = 0`` (its own
table, ``PyImport_FrozenModules``, carries its early imports), so of those 23 Python only ever
loads the three bootstrap modules: ``importlib._bootstrap``, ``importlib._bootstrap_external``
and ``zipimport``, which the program's ``stdlib.zip`` needs.

``OUT_DIR/frozen.c`` defines all of those symbols: the bootstrap table as bytecode that the
builder's own Python compiles from its own sources (with the code names CPython's freeze gives
them, ``<frozen importlib._bootstrap>``, which ``import.c`` looks for to hide importlib's frames
from tracebacks), empty stdlib and test tables, the bootstrap aliases, and the two deepfreeze
functions doing nothing. Linked before the archive, it leaves the linker no reason to pull
``frozen.o`` or ``deepfreeze.o``; had anything still needed one of them, the link would fail
on a symbol defined twice. Python unmarshals the three modules at start instead of using
static objects (about 110 KB of bytecode).
"""

import marshal
import sys
import sysconfig
from pathlib import Path

# name in the table -> (module it is frozen from, is a package)
BOOTSTRAP = {
    "_frozen_importlib": ("importlib._bootstrap", False),
    "_frozen_importlib_external": ("importlib._bootstrap_external", False),
    "zipimport": ("zipimport", False),
}
_LINE = 16  # bytes per line of a C array


def frozen_code(origname: str, source: str) -> bytes:
    """``origname``'s module code marshalled as CPython's freeze does it (the same code name),
    compiled without docstrings and asserts like the rest of the program's bytecode."""
    code = compile(source, f"<frozen {origname}>", "exec", dont_inherit=True, optimize=2)
    return marshal.dumps(code)


def _c_array(name: str, data: bytes) -> str:
    rows = (
        "    " + ",".join(str(byte) for byte in data[start : start + _LINE]) + ","
        for start in range(0, len(data), _LINE)
    )
    return f"static const unsigned char {name}[] = {{\n" + "\n".join(rows) + "\n};\n"


def frozen_c(modules: dict[str, tuple[str, bool, bytes]]) -> str:
    """The C source of the frozen tables: ``modules`` maps a table name to the module it is
    frozen from, whether it is a package, and its marshalled code."""
    if not modules:
        raise ValueError("no bootstrap modules to freeze")
    arrays, entries, aliases = [], [], []
    for index, (name, (origname, package, data)) in enumerate(modules.items()):
        arrays.append(_c_array(f"M_{index}", data))
        flag = "true" if package else "false"
        entries.append(f'    {{"{name}", M_{index}, (int)sizeof(M_{index}), {flag}, NULL}},')
        if name != origname:
            aliases.append(f'    {{"{name}", "{origname}"}},')
    return "\n".join(
        [
            "/* Written by docker-workflow's frozen.py from this Python's own sources. */",
            "#define Py_BUILD_CORE 1",
            '#include "Python.h"',
            '#include "internal/pycore_import.h"',
            "#include <stdbool.h>",
            "",
            *arrays,
            "static const struct _frozen bootstrap_modules[] = {",
            *entries,
            "    {0, 0, 0, 0, 0}",
            "};",
            "static const struct _frozen no_modules[] = {{0, 0, 0, 0, 0}};",
            "static const struct _module_alias aliases[] = {",
            *aliases,
            "    {0, 0}",
            "};",
            "const struct _frozen *_PyImport_FrozenBootstrap = bootstrap_modules;",
            "const struct _frozen *_PyImport_FrozenStdlib = no_modules;",
            "const struct _frozen *_PyImport_FrozenTest = no_modules;",
            "const struct _module_alias *_PyImport_FrozenAliases = aliases;",
            "const struct _frozen *PyImport_FrozenModules = NULL;",
            "",
            "/* No deep-frozen code objects: nothing to intern at start or free at exit. */",
            "int _Py_Deepfreeze_Init(void);",
            "void _Py_Deepfreeze_Fini(void);",
            "int _Py_Deepfreeze_Init(void) { return 0; }",
            "void _Py_Deepfreeze_Fini(void) {}",
            "",
        ]
    )


def bootstrap_modules(stdlib: Path) -> dict[str, tuple[str, bool, bytes]]:
    """:data:`BOOTSTRAP` compiled from the sources in ``stdlib``, as :func:`frozen_c` takes
    them. A missing source is an error: this Python has another layout."""
    modules = {}
    for name, (origname, package) in BOOTSTRAP.items():
        relative = origname.replace(".", "/") + ("/__init__.py" if package else ".py")
        source = stdlib / relative
        if not source.is_file():
            raise ValueError(f"{source}: no source of {origname} to freeze")
        modules[name] = (origname, package, frozen_code(origname, source.read_text()))
    return modules


def main() -> int:
    out = Path(sys.argv[1])
    try:
        modules = bootstrap_modules(Path(sysconfig.get_paths()["stdlib"]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "frozen.c").write_text(frozen_c(modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
