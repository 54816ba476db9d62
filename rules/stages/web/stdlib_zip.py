"""Tree-shaking of Pyodide's standard library archive (``python_stdlib.zip``) for one site.

Like the image's shaking (``rules/stdlib_shake.py``), only what can be imported goes in: the
closure of the imports of Pyodide's own start-up packages (``_pyodide``, ``pyodide``), of the
engine modules the site ships, and of the workflow's tools and packages. The archive holds
Python 3.14 sources, newer than the Python that runs the build, so imports are found by a
scanner of import statements rather than by ``ast``: it may keep a module too many (an import
in a docstring), never one too few for a static import. The ``encodings`` package stays whole,
as it does in the image: codecs are looked up by name at run time.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

# Pyodide's core imports asyncio (its event loop is the page's) and its own two packages.
ALWAYS = ("_pyodide", "pyodide", "pyodide.ffi", "asyncio", "encodings", "site")
# Modules that library code imports only inside functions, for what a workflow in a page never
# does: the REPL and the debugger (``site``'s interactive hook, ``pdb``, ``help()``), command
# lines (``python -m json.tool``), process pools, ``urllib.request`` (``pathlib``'s file URLs).
# Such a lazy import is not followed; a top-level import, or a tool's own import, still is.
LAZY_SKIPPED = (
    "_pyrepl",
    "pdb",
    "pydoc",
    "argparse",
    "code",
    "rlcompleter",
    "urllib.request",
    "http.cookiejar",
    "http.server",
    "tracemalloc",
    "importlib.metadata",
    "multiprocessing",
    "concurrent.futures.process",
    "concurrent.futures.interpreter",
    "concurrent.interpreters",
)
WHOLE_PACKAGES = ("encodings", "_pyodide")
_IMPORT = re.compile(
    r"^([ \t]*)(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)"
    r"|import[ \t]+([^\n#;]+))",
    re.MULTILINE,
)


_JS_MODULE = re.compile(
    r"""(?:pyimport\(|import_module\()?["']([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)["']"""
)


def runtime_imports(js_source: str) -> set[str]:
    """Modules Pyodide's JavaScript imports by name at start-up (``"pyodide.code"``, and the
    like): every quoted name in it that starts with ``pyodide``/``_pyodide`` or is
    ``pyimport``-ed. Names that are not modules of the archive are dropped later."""
    found = set()
    for match in _JS_MODULE.finditer(js_source):
        name = match.group(1)
        if name.startswith(("pyodide", "_pyodide")) or match.group(0).startswith(
            ("pyimport", "import_module")
        ):
            found.add(name)
    return found


def _module_names(names: Iterable[str]) -> dict[str, str]:
    """Module name -> archive member, for every ``.py`` file of the archive."""
    modules: dict[str, str] = {}
    for name in names:
        if not name.endswith(".py"):
            continue
        parts = name[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(part.isidentifier() for part in parts):
            modules[".".join(parts)] = name
    return modules


def imports_of(source: str, module: str, is_package: bool) -> dict[str, bool]:
    """Absolute names of what ``source`` (module ``module``) imports, submodules included,
    each with whether some import of it is at the top level (runs when the module loads)."""
    found: dict[str, bool] = {}

    def add(name: str, top: bool) -> None:
        if name:
            found[name] = found.get(name, False) or top

    for match in _IMPORT.finditer(source):
        indent, origin, names, plain = match.groups()
        top = not indent
        if plain is not None:
            for part in plain.split(","):
                add(part.split(" as ")[0].strip(), top)
            continue
        level = len(origin) - len(origin.lstrip("."))
        base = origin[level:]
        if level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (level - 1)] if level > 1 else package
            base = ".".join([*package, base] if base else package)
        add(base, top)
        for item in names.strip("()").split(","):
            name = item.split(" as ")[0].strip()
            if name.isidentifier():
                add(f"{base}.{name}", top)
    return found


def _excluded(name: str, excluded: frozenset[str]) -> bool:
    parts = name.split(".")
    if parts[-1] == "__main__":  # what ``python -m`` runs; never imported
        return True
    return any(".".join(parts[:end]) in excluded for end in range(1, len(parts) + 1))


def needed_modules(
    archive: zipfile.ZipFile, roots: Iterable[str], excluded: Iterable[str] = ()
) -> set[str]:
    """The closure of ``roots`` over the archive's imports (names the archive does not hold,
    built-in and extension modules, are dropped). An import inside a block (a function, a
    ``try``) of an ``excluded`` module is not followed; one at the top level always is, since
    it runs whenever its module is imported."""
    out = frozenset((*excluded, *LAZY_SKIPPED))
    modules = _module_names(archive.namelist())
    wanted = set(roots) | {m for m in modules for p in WHOLE_PACKAGES if m.startswith(p + ".")}
    seen: set[str] = set()
    todo = sorted(wanted)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # a module's packages are imported before it
            candidate = ".".join(parts[:end])
            if candidate in modules and candidate not in seen:
                seen.add(candidate)
                member = modules[candidate]
                source = archive.read(member).decode("utf-8", "replace")
                found = imports_of(source, candidate, member.endswith("__init__.py"))
                todo.extend(n for n, top in found.items() if top or not _excluded(n, out))
    return seen


def shake_stdlib(
    source: Path, dest: Path, roots: Iterable[str], excluded: Iterable[str] = ()
) -> list[str]:
    """Write the archive of the modules ``roots`` need; return their names, sorted.

    ``excluded`` are the image's groups nobody asked for (``rules/stdlib_shake.py``): modules
    such as ``pdb`` or ``multiprocessing`` that the scanner reaches only through imports made
    inside functions the engine never calls.
    """
    with zipfile.ZipFile(source) as archive:
        keep = needed_modules(archive, roots, excluded)
        modules = _module_names(archive.namelist())
        members = {modules[name] for name in keep}
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            for info in archive.infolist():
                if info.filename in members:
                    out.writestr(info, archive.read(info), zipfile.ZIP_DEFLATED, 9)
    return sorted(keep)
