"""Write the shared program's table of built-in modules: the builder's own, less those dropped.

Runs inside the builder before the compile (``compile.sh``):
``python3 inittab.py DROPPED_FILE OUT_DIR``. Debian's static libpython defines the table
(``_PyImport_Inittab``) in its ``config.o``, which names the init function of every module
built into Debian's interpreter (``unicodedata``, ``_elementtree``, ``pyexpat``, ...), so
linking the archive pulls all of them in. The program links ``OUT_DIR/config.c`` (this table
without the dropped modules) before the archive: the archive's ``config.o`` and the dropped
modules' objects are then never needed by the linker, and stay out. ``OUT_DIR/builtins`` lists
the modules the table keeps (one a line), which the module layer reads as the program's real
built-ins (``rules/stages/program_builtins.py``).
"""

import re
import sys
import sysconfig
from pathlib import Path

_DECLARATION = re.compile(r"^extern PyObject\* PyInit_(\w+)\(void\);$")
_ENTRY = re.compile(r'^\s*\{"(\w+)", (\w+)\},$')


def trimmed(config_c: str, dropped: set[str]) -> tuple[str, list[str]]:
    """``config.c`` without the entries and declarations of ``dropped``, and the names the
    table keeps. A dropped name the table does not have is an error: the list is wrong for
    this Python."""
    lines, kept, seen = [], [], set()
    for line in config_c.splitlines():
        declared = _DECLARATION.match(line)
        entry = _ENTRY.match(line)
        name = (declared or entry).group(1) if (declared or entry) else None
        if name in dropped:
            seen.add(name)
            continue
        if entry and name != "__main__":
            kept.append(name)
        lines.append(line)
    if not kept or "_PyImport_Inittab" not in config_c:
        raise ValueError("not a config.c: no _PyImport_Inittab entries")
    missing = sorted(dropped - seen)
    if missing:
        raise ValueError(f"config.c has no built-in module {', '.join(missing)}")
    return "\n".join(lines) + "\n", kept


def main() -> int:
    dropped_file, out = Path(sys.argv[1]), Path(sys.argv[2])
    dropped = {line.strip() for line in dropped_file.read_text().splitlines()}
    dropped.discard("")
    source = Path(sysconfig.get_config_var("LIBPL")) / "config.c"
    try:
        text, kept = trimmed(source.read_text(), dropped)
    except ValueError as error:
        print(f"error: {source}: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.c").write_text(text)
    (out / "builtins").write_text("".join(f"{name}\n" for name in sorted(kept)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
