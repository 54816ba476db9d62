"""``build --target web``: write the static site that runs one workflow in the browser.

The site holds Pyodide's runtime (pinned, checked: ``pyodide_dist``), a standard library archive
shaken to what the engine, Pyodide's start-up and the tools import (``stdlib_zip``), the engine
modules the browser needs (``engine.zip``), ``bundle.json``, the locked pure-Python wheels, the
page (``runner_template/web``) and ``site.json``, its settings. Nothing is loaded from anywhere
else when the page runs. Tools a browser cannot run are refused first (``browser_check``).
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import runner_template
from rules.errors import UserError
from rules.fsutil import replace_tree, staging_dir
from rules.stages.lock import ensure_wheel, lock_wheels, make_lock
from rules.stages.pipeline import analyze_file
from rules.stages.shake import canonical_json, shake
from rules.stages.stdlib_shake import excluded_modules
from rules.stages.web import pyodide_dist
from rules.stages.web.browser_check import check_bundle, check_wheels
from rules.stages.web.stdlib_zip import ALWAYS, runtime_imports, shake_stdlib
from runner_template.web import PAGE_FILES, WORKER_FILES, site_config

ENGINE_ROOTS = ("runner_template.engine", "runner_template.web.host")
WHEEL_PLATFORM = "linux/amd64"  # pure-Python wheels are the same on every platform
MARKER = "site.json"
# Fixed timestamps inside the zips: equal inputs give equal bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SiteReport:
    out: Path
    files: int
    total_bytes: int
    gzip_bytes: int
    stdlib_modules: int

    def summary(self) -> str:
        return (
            f"{self.out}: {self.files} files, {self.total_bytes / 1e6:.1f} MB"
            f" ({self.gzip_bytes / 1e6:.1f} MB compressed), {self.stdlib_modules} stdlib modules"
        )


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports anywhere (inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def engine_modules() -> tuple[dict[str, Path], set[str]]:
    """The runner modules the browser needs (``ENGINE_ROOTS``' closure) and the other
    modules they import (the standard library, ``js`` and ``pyodide``)."""
    root = Path(runner_template.__file__).resolve().parent.parent
    found: dict[str, Path] = {}
    others: set[str] = set()
    todo = ["runner_template", "runner_template.web", *ENGINE_ROOTS]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = root.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not path.is_file():  # a name imported from a module, not a module
            continue
        found[name] = path
        for module in _imports(path):
            if module.split(".")[0] == "runner_template":
                todo.append(module)
            else:
                others.add(module)
    return found, others


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(members):
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), members[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _check_destination(out: Path) -> None:
    """Only an empty folder, or a site built before, is replaced: never a user's folder."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UserError(
            f"{out}: exists and is not a site built by docker-workflow:"
            " choose a new or empty folder"
        )


def _wheels(analysis, main_file: str) -> list[Path]:
    if not (analysis.packages or {}).get("requirements"):
        return []
    lock = make_lock(analysis.packages, [WHEEL_PLATFORM], main_file)
    wheels = lock_wheels(lock, WHEEL_PLATFORM)
    check_wheels(wheels, analysis.packages, main_file)
    return [ensure_wheel(wheel, WHEEL_PLATFORM) for wheel in wheels]


def _sizes(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, bytes gzip-compressed one by one, as a server or CDN would send them)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 6, mtime=0)) for p in files)
    return len(files), total, packed


def build_site(
    workflow: Path, out: Path, tools_dirs: list[Path] | None = None, model: str | None = None
) -> SiteReport:
    """Write the site of ``workflow`` into ``out`` (replaced as a whole, atomically)."""
    out = Path(out).resolve()
    _check_destination(out)
    tree, analysis, tools = analyze_file(Path(workflow), tools_dirs, model)
    main_file = analysis.files[0] if analysis.files else str(workflow)
    bundle = shake(tree, tools)
    check_bundle(bundle, main_file)
    wheels = _wheels(analysis, main_file)
    dist = pyodide_dist.pyodide_dir()
    modules, engine_imports = engine_modules()
    runtime_js = (dist / "pyodide.asm.mjs").read_text(encoding="utf-8", errors="replace")
    roots = {*ALWAYS, *runtime_imports(runtime_js), *engine_imports}
    roots |= {*analysis.python_modules, *analysis.optional_modules}
    wanted_top = {name.split(".")[0] for name in roots}
    excluded = [m for m in excluded_modules(sorted(wanted_top), https=False) if m not in wanted_top]

    staging = staging_dir(out)
    try:
        site_py = staging / "pyodide"
        site_py.mkdir()
        for name in pyodide_dist.RUNTIME_FILES:
            shutil.copyfile(dist / name, site_py / name)
        kept = shake_stdlib(
            dist / pyodide_dist.STDLIB_FILE, site_py / "python_stdlib.zip", roots, excluded
        )
        info = json.loads((dist / pyodide_dist.LOCK_FILE).read_text())["info"]
        (site_py / "pyodide-lock.json").write_text(json.dumps({"info": info, "packages": {}}))
        source_root = Path(runner_template.__file__).resolve().parent.parent
        engine = {str(p.relative_to(source_root)): p.read_bytes() for p in modules.values()}
        (staging / "engine.zip").write_bytes(_zip_bytes(engine))
        (staging / "bundle.json").write_bytes(canonical_json(bundle))
        if wheels:
            (staging / "wheels").mkdir()
            for path in wheels:
                shutil.copyfile(path, staging / "wheels" / path.name)
        web = Path(runner_template.__file__).resolve().parent / "web"
        for name in (*PAGE_FILES, *WORKER_FILES):
            shutil.copyfile(web / name, staging / name)
        config = site_config(
            bundle,
            "pyodide",
            pyodide=pyodide_dist.VERSION,
            wheels=[f"wheels/{p.name}" for p in wheels],
        )
        (staging / MARKER).write_text(json.dumps(config, indent=1, ensure_ascii=False))
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        files, total, packed = _sizes(staging)
        replace_tree(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SiteReport(out, files, total, packed, len(kept))
