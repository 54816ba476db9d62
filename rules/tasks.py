"""The build graph as doit tasks, and the Bazel-like declarations that make them.

``dodo.py`` declares targets with :func:`workflow_image` (and :func:`default_targets` for one
target per file in ``workflows/``); this module turns every target into five kinds of tasks:

    analyze:NAME -> shake:NAME -> render:NAME -> compile:NAME-ARCH (one per platform) -> image:NAME

Each task has real ``file_dep`` and ``targets`` under ``cache/targets/NAME/`` and is up to date
by content (doit's md5 checker) and by ``config_changed`` on its options, never by timestamps
alone. Paths are kept relative to the project folder, so a fresh clone with a restored ``cache/``
finds everything up to date. The compile outputs themselves are content-addressed
(``cache/compiled/<key>/``): two targets with the same engine share one compile and one layer.

Options can be set per target, and for every target from the command line:
``doit platforms=linux/arm64 compiler=none builder_image=REF``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from doit import get_var
from doit.exceptions import TaskFailed
from doit.tools import config_changed

from rules.build import BuildOptions, compile_request, image_request
from rules.compile import compile_engine
from rules.errors import UserError
from rules.fsutil import atomic_write
from rules.image import build_image, image_is_current
from rules.paths import cache_dir, target_dir
from rules.pipeline import load_prepared, step_analyze, step_render, step_shake
from rules.platforms import arch_of, parse_platforms
from rules.registry import Registry
from rules.render import ENGINE_DIR, engine_files

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
TARGETS: dict[str, Target] = {}


@dataclass
class Target:
    """One image to build: a workflow and its build options."""

    name: str
    workflow: Path
    options: BuildOptions = field(default_factory=BuildOptions)


def workflow_image(
    name: str,
    workflow: str | Path,
    *,
    platforms: list[str] | None = None,
    compiler: str = "nuitka",
    runtime: str = "scratch",
    builder_image: str | None = None,
    tag: str | None = None,
    push: bool = False,
    oci: str | Path | None = None,
    model: str | None = None,
    tools: list[str | Path] | None = None,
) -> Target:
    """Declare an image target (the ``dodo.py`` macro)."""
    options = BuildOptions(
        platforms=parse_platforms(",".join(platforms)) if platforms else parse_platforms(None),
        compiler=compiler,
        runtime=runtime,
        builder_image=builder_image,
        tag=tag,
        push=push,
        oci_path=Path(oci).resolve() if oci else None,
        tools_dirs=[Path(t) for t in tools] if tools else None,
        model=model,
    )
    target = Target(name, Path(workflow), options)
    TARGETS[name] = target
    return target


def default_targets(folder: str | Path = "workflows") -> None:
    """One target per ``*.json`` in ``folder``, named after the file, unless that name is taken."""
    for path in sorted(Path(folder).glob("*.json")):
        if path.stem not in TARGETS:
            workflow_image(path.stem, path)


def apply_command_line(target: Target) -> Target:
    """``doit VAR=value`` overrides, for every target."""
    options = target.options
    if get_var("platforms"):
        options = replace(options, platforms=parse_platforms(get_var("platforms")))
    for key in ("compiler", "runtime", "builder_image", "model"):
        if get_var(key):
            options = replace(options, **{key: get_var(key)})
    return replace(target, options=options)


# -- paths and fingerprints ---------------------------------------------------------------------


def rel(path: Path) -> str:
    """A path as doit should record it: relative to the project when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _code_fingerprint() -> str:
    """The build code itself: a new docker-workflow version rebuilds what it must."""
    digest = hashlib.sha256()
    for folder in ("rules", "runner_template"):
        for path in sorted((PACKAGE_ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _registry_files(target: Target) -> list[str]:
    registry = Registry.for_workflow(target.workflow, target.options.tools_dirs)
    files = []
    for root in registry.roots:
        files += [rel(p) for p in sorted(root.rglob("*")) if p.suffix in (".yaml", ".yml", ".py")]
    return files


def _options_config(target: Target, *keys: str) -> dict[str, Any]:
    data = asdict(target.options)
    config = {key: str(data[key]) for key in keys}
    config["code"] = CODE_FINGERPRINT
    return config


CODE_FINGERPRINT = _code_fingerprint()


# -- failures -----------------------------------------------------------------------------------

FAILURES: list[UserError] = []


def guarded(step: Callable[..., Any]) -> Callable[..., Any]:
    """A doit action that reports a :class:`UserError` as a clean task failure, no traceback.

    The error is also kept in :data:`FAILURES`, so ``docker-workflow build`` can print it the
    way every other command does.
    """

    @functools.wraps(step)
    def action(*args: Any) -> Any:
        try:
            step(*args)
        except UserError as error:
            FAILURES.append(error)
            return TaskFailed("\n".join(error.lines()))
        return None

    return action


# -- the tasks ----------------------------------------------------------------------------------


def _out(target: Target) -> Path:
    return target_dir(target.name)


def _engine_targets(target: Target) -> list[str]:
    engine = _out(target) / "runner" / ENGINE_DIR
    return [rel(engine / name) for name in (*engine_files([], False), ".digest")]


def _compile_marker(target: Target, platform: str) -> Path:
    return _out(target) / f"compile-{arch_of(platform)}.json"


def _workflow_step(target: Target, step, produces: str, after: list[str]) -> dict:
    """A task that reads the workflow and its tool registry (analyze and shake)."""
    out = _out(target)
    options = target.options
    return {
        "name": target.name,
        "actions": [(guarded(step), [target.workflow, out, options.tools_dirs, options.model])],
        "file_dep": [rel(target.workflow), *after, *_registry_files(target)],
        "targets": [rel(out / produces)],
        "uptodate": [config_changed(_options_config(target, "model", "tools_dirs"))],
        "clean": True,
    }


def task_analyze() -> Iterator[dict]:
    """Analyze each workflow: tools, models, modules (cache/targets/NAME/analysis.json)."""
    for target in map(apply_command_line, TARGETS.values()):
        yield _workflow_step(target, step_analyze, "analysis.json", [])


def task_shake() -> Iterator[dict]:
    """Tree-shake each workflow into its bundle (cache/targets/NAME/bundle.json)."""
    for target in map(apply_command_line, TARGETS.values()):
        yield _workflow_step(
            target, step_shake, "bundle.json", [rel(_out(target) / "analysis.json")]
        )


def task_render() -> Iterator[dict]:
    """Render the runner: the engine (compiled) and the bundle (data)."""
    for target in map(apply_command_line, TARGETS.values()):
        out = _out(target)
        yield {
            "name": target.name,
            "actions": [(guarded(step_render), [out])],
            "file_dep": [rel(out / "analysis.json"), rel(out / "bundle.json")],
            "targets": [*_engine_targets(target), rel(out / "runner" / "bundle.json")],
            "uptodate": [config_changed({"code": CODE_FINGERPRINT})],
            "clean": True,
        }


def _compile_action(target: Target, platform: str) -> None:
    prepared = load_prepared(_out(target))
    folder = compile_engine(compile_request(prepared, target.options, platform))
    marker = {"compiled": str(folder.relative_to(cache_dir())), "engine": prepared.engine_digest}
    atomic_write(_compile_marker(target, platform), json.dumps(marker, indent=2).encode())


def _compiled_exists(target: Target, platform: str) -> bool:
    if not _compile_marker(target, platform).exists():
        return False
    return (compile_marker_dir(target, platform) / "app").is_dir()


def task_compile() -> Iterator[dict]:
    """Compile the engine once per platform (content-addressed; shared between targets)."""
    for target in map(apply_command_line, TARGETS.values()):
        for platform in target.options.platforms:
            yield {
                "name": f"{target.name}-{arch_of(platform)}",
                "actions": [(guarded(_compile_action), [target, platform])],
                "file_dep": _engine_targets(target),
                "targets": [rel(_compile_marker(target, platform))],
                "uptodate": [
                    config_changed(
                        {
                            **_options_config(target, "compiler"),
                            "builder": target.options.resolved_builder(),
                        }
                    ),
                    (_compiled_exists, [target, platform]),
                ],
                "clean": True,
            }


def compile_marker_dir(target: Target, platform: str) -> Path:
    """The compiled folder the compile step recorded for ``target`` on ``platform``."""
    marker = json.loads(_compile_marker(target, platform).read_text())
    return cache_dir() / marker["compiled"]


def _image_request(target: Target):
    prepared = load_prepared(_out(target))
    compiled = {p: compile_marker_dir(target, p) for p in target.options.platforms}
    return image_request(prepared, target.options, compiled)


def _image_action(target: Target) -> None:
    request = _image_request(target)
    build_image(request)
    atomic_write(_out(target) / "image.json", json.dumps(request.labels(), indent=2).encode())


def _image_exists(target: Target) -> bool:
    try:
        return not target.options.push and image_is_current(_image_request(target))
    except (OSError, KeyError, ValueError):
        return False


def task_image() -> Iterator[dict]:
    """Build each image: the compiled layer (shared) plus the bundle layer (per workflow)."""
    for target in map(apply_command_line, TARGETS.values()):
        out = _out(target)
        yield {
            "name": target.name,
            "actions": [(guarded(_image_action), [target])],
            "file_dep": [
                rel(out / "runner" / "bundle.json"),
                *(rel(_compile_marker(target, p)) for p in target.options.platforms),
            ],
            "targets": [rel(out / "image.json")],
            "uptodate": [
                config_changed(
                    _options_config(target, "tag", "runtime", "push", "oci_path", "platforms")
                ),
                (_image_exists, [target]),
            ],
            "clean": True,
        }


def doit_config() -> dict[str, Any]:
    """``DOIT_CONFIG`` for ``dodo.py``: the sqlite3 dep DB in ``cache/`` (created here, since
    sqlite cannot create a folder), ``image`` tasks by default, action output shown."""
    os.makedirs(cache_dir(), exist_ok=True)
    return {
        "dep_file": str(cache_dir() / ".doit.db"),
        "backend": "sqlite3",
        "default_tasks": ["image"],
        "verbosity": 2,
        "action_string_formatting": "new",
    }


TASK_CREATORS = {
    "task_analyze": task_analyze,
    "task_shake": task_shake,
    "task_render": task_render,
    "task_compile": task_compile,
    "task_image": task_image,
}


def run_doit(args: list[str], config: dict[str, Any] | None = None) -> int:
    """Run doit over the declared targets."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    namespace = {**TASK_CREATORS, "DOIT_CONFIG": {**doit_config(), **(config or {})}}
    return DoitMain(ModuleTaskLoader(namespace)).run(args)


def build_targets(targets: list[Target]) -> None:
    """Build ``targets`` through the graph; raise the first step's :class:`UserError`."""
    from doit.reporter import ConsoleReporter

    class StepReporter(ConsoleReporter):
        """doit's console lines (``. compile:x-amd64`` ran, ``-- image:x`` up to date) on
        stderr, so that stdout stays the command's result (``run`` prints JSON there), with
        failures left to the caller, which prints them as one clean message."""

        def __init__(self, outstream, options):
            super().__init__(sys.stderr, options)

        def add_failure(self, task, exception):
            pass

        def complete_run(self):
            pass

    TARGETS.clear()
    TARGETS.update({t.name: t for t in targets})
    FAILURES.clear()
    code = run_doit([f"image:{t.name}" for t in targets], {"reporter": StepReporter})
    if FAILURES:
        raise FAILURES[0]
    if code != 0:
        names = ", ".join(t.name for t in targets)
        raise UserError(f"the build of {names} failed (doit exit {code})")
