"""Build Debian's built-in modules as extension modules, from the objects of its static libpython.

Runs inside the builder, once per (builder image, platform), from
``rules/stages/builder_python.py``: ``python3 builtin_extensions.py OUT_DIR``. The shared
program leaves some built-in modules out of its link (``rules/stages/program_builtins.py``);
a tool that imports one gets it from the module layer like any extension module. Each module of
Debian's ``Setup.local`` (the ones it builds into the interpreter) is linked as
``OUT_DIR/<name><EXT_SUFFIX>`` from its objects in ``libpython3.11-pic.a`` (position-independent
code, the same code the archive links into a program) and the libraries its line names
(``pyexpat``: ``-lexpat``). The Python API it calls resolves against the program, which exports
its symbols. Prints ``{"built": [...], "failed": {name: why}}`` as JSON.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def setup_modules(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """``Setup.local``'s modules: name -> (object files, linker arguments for libraries)."""
    modules = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("*") or "=" in line.split()[0]:
            continue  # a comment, a *shared*/*static* marker, a variable
        name, *args = line.split()
        objects = [Path(a).name[:-2] + ".o" for a in args if a.endswith(".c")]
        libraries = [a for a in args if a.startswith(("-l", "-L"))]
        if objects:
            modules[name] = (objects, libraries)
    return modules


def build(name: str, objects: list[str], libraries: list[str], archive: Path, out: Path) -> str:
    """Link one module; an empty string, or why it failed."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    with tempfile.TemporaryDirectory() as scratch:
        steps = [
            ["ar", "x", str(archive), *objects],
            ["gcc", "-shared", "-s", "-o", str(out / f"{name}{suffix}"), *objects, *libraries],
        ]
        for step in steps:
            result = subprocess.run(step, cwd=scratch, capture_output=True, text=True)
            if result.returncode != 0:
                lines = (result.stderr or result.stdout).strip().splitlines()
                return f"{step[0]}: {lines[-1] if lines else 'exit ' + str(result.returncode)}"
    return ""


def main() -> int:
    out = Path(sys.argv[1])
    libpl = Path(sysconfig.get_config_var("LIBPL"))
    version = sysconfig.get_config_var("VERSION")
    archive = libpl / f"libpython{version}-pic.a"
    setup = libpl / "Setup.local"
    report: dict = {"built": [], "failed": {}}
    if not archive.is_file() or not setup.is_file() or shutil.which("gcc") is None:
        why = f"no {archive.name}, Setup.local or gcc in the builder"
        report["failed"] = {"*": why}
    else:
        for name, (objects, libraries) in sorted(setup_modules(setup.read_text()).items()):
            failure = build(name, objects, libraries, archive, out)
            if failure:
                report["failed"][name] = failure
            else:
                report["built"].append(name)
                os.chmod(out / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}", 0o755)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
