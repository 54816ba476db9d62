"""Fingerprints of the build code each pipeline step runs, for doit's ``config_changed``.

A new docker-workflow version must rebuild what its changes affect, and nothing else: the
fingerprint of a step covers the modules it imports (followed through ``rules.*`` and
``runner_template.*`` imports) plus the data files those modules read, hashed as code, not as
text: docstrings, comments and formatting do not count, so a docstring edit dirties nothing.

Parsing costs milliseconds per module, and doit loads the graph on every run, so results are
kept per process and, on disk, per file content (``cache/.fingerprints.json``): a no-op
``doit`` reads bytes and hashes them, it does not parse.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from functools import cache
from pathlib import Path

from rules.paths import cache_dir

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("rules", "runner_template")
# Modules that read data files: those files are part of their code.
DATA_FILES = {
    "rules.files.schemas": ("rules/files/schema/*.json",),
    "rules.stages.compile": (
        "rules/docker/build/Dockerfile.compile",
        "rules/docker/build/compile.sh",
        "rules/docker/build/elf_closure.py",
        "rules/docker/build/nuitka_startup.py",
    ),
    "rules.stages.program_stdlib": ("rules/docker/build/stdlib_zip.py",),
    # The engine render copies into every runner (render.engine_sources and page_module): its
    # files are data to the render step, which imports only bundle_format of them.
    "rules.stages.render": (
        "runner_template/*.py",
        "runner_template/serve/*.py",
        "runner_template/web/__init__.py",
        "runner_template/web/index.html",
        "runner_template/web/app.js",
        "runner_template/web/style.css",
    ),
    "rules.stages.image": ("rules/docker/build/Dockerfile.image",),
    "rules.stages.builder_python": (
        "rules/docker/build/builder_python.py",
        "rules/docker/build/elf_closure.py",
    ),
}
_STORE_NAME = ".fingerprints.json"


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    candidate = PACKAGE_ROOT.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _analyze_source(data: bytes) -> tuple[str, list[str]]:
    """(digest of the code without docstrings, our modules it imports)."""
    tree = ast.parse(data)
    imports: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        imports.update(n for n in names if n.split(".")[0] in OUR_PACKAGES)
    code = ast.dump(_strip_docstrings(tree), include_attributes=False)
    return hashlib.sha256(code.encode()).hexdigest(), sorted(imports)


class _Store:
    """``sha256(bytes) -> [code digest, imports]``, persisted so later processes skip parsing."""

    def __init__(self) -> None:
        self.path = cache_dir() / _STORE_NAME
        try:
            self.entries: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def source(self, data: bytes) -> tuple[str, list[str]]:
        key = hashlib.sha256(data).hexdigest()
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = list(_analyze_source(data))
            self.dirty = True
        return found[0], found[1]

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{_STORE_NAME}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            pass  # a cache: losing it costs a re-parse, nothing else


@cache
def _store() -> _Store:
    return _Store()


def _closure(module: str) -> dict[str, str]:
    """Every file of our code that ``module`` runs: relative path -> digest."""
    store = _store()
    found: dict[str, str] = {}
    todo = [module]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        rel = path.relative_to(PACKAGE_ROOT).as_posix()
        digest, imports = store.source(path.read_bytes())
        found[rel] = digest
        todo.extend(imports)
        for pattern in DATA_FILES.get(name, ()):
            for data_file in sorted(PACKAGE_ROOT.glob(pattern)):
                relative = data_file.relative_to(PACKAGE_ROOT).as_posix()
                found[relative] = hashlib.sha256(data_file.read_bytes()).hexdigest()
    store.save()
    return found


@cache
def code_fingerprint(*modules: str) -> str:
    """One digest of the code ``modules`` run (their import closure within this project)."""
    files: dict[str, str] = {}
    for module in modules:
        files.update(_closure(module))
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()[:20]
