"""The build graph as doit tasks: what each declared target (``rules/graph/targets.py``) becomes.

    analyze:NAME -> shake:NAME --------------------> render:NAME -> compile:NAME-ARCH -> image:NAME
               \\-> lock:NAME (pip packages) ----/                   (one per platform)    /
               \\-------------------------------------------------> layer:NAME-ARCH -----/

With ``--compiler nuitka`` (the default) the compile depends on the shared program alone
(``runner/program/.digest``: nothing about the workflow), and the workflow's modules and wheels
are the layer task's (``rules/stages/modules_layer.py``): an import added to a tool runs
analyze, shake, render, layer and image, and no compile. The other compilers compile the
workflow's engine (``runner/engine/.digest``) and have no layer task.

Each task has real ``file_dep`` and ``targets`` under the target's folder and is up to date by
content (doit's md5 checker) and by ``config_changed`` on its options and on a fingerprint of
the code that step runs (``rules/graph/fingerprint.py``), never by timestamps alone. Paths are kept
relative to the project folder, so a fresh clone with a restored ``cache/`` finds everything up
to date. The compile outputs themselves are content-addressed (``cache/compiled/<key>/``): two
targets with the same engine share one compile and one layer.

A :class:`BuildGraph` holds the targets it builds and the failures of its steps: ``dodo.py``
hands doit the task creators of a graph over its declarations, the CLI (``rules/graph/run.py``)
one over the targets of a command, and nothing travels through module globals. Options can be
set per target, and for every target from the command line: ``doit platforms=linux/arm64
compiler=none``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from doit import get_var
from doit.exceptions import TaskFailed
from doit.tools import config_changed

from rules.errors import UserError
from rules.files.registry import Registry
from rules.files.subworkflows import scan_files
from rules.fsutil import atomic_write
from rules.graph import cache_db
from rules.graph.fingerprint import code_fingerprint
from rules.graph.options import compile_request, image_request, layer_request, layers_modules
from rules.graph.targets import Target, apply_command_line
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages.prepared import (
    ANALYSIS_FILE,
    ENGINE_DIR,
    LOCK_FILE,
    PROGRAM_DIR,
    RUNNER_DIR,
    load_prepared,
)
from runner_template.bundle_format import BUNDLE_FILE

# The steps themselves (and what they import: jsonschema, packaging, the Docker clients) load
# when a task runs, not when doit reads the graph: a no-op run never pays for them.


def step_analyze(*args):
    from rules.stages.pipeline import step_analyze as step

    return step(*args)


def step_shake(*args):
    from rules.stages.pipeline import step_shake as step

    return step(*args)


def step_lock(*args):
    from rules.stages.pipeline import step_lock as step

    return step(*args)


def step_render(*args):
    from rules.stages.pipeline import step_render as step

    return step(*args)


def rel(path: Path | str) -> str:
    """A path as doit should record it: relative to the project when inside it."""
    return _rel(str(path), os.getcwd())


@functools.cache
def _rel(path: str, cwd: str) -> str:
    # Cached: every workflow lists the same registry files, and resolving is a no-op's hot spot.
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(cwd))
    except ValueError:
        return str(resolved)


def _config(target: Target, module: str, *keys: str, **extra: Any) -> dict[str, Any]:
    data = asdict(target.options)
    config = {key: str(data[key]) for key in keys}
    config["code"] = code_fingerprint(module)
    return {**config, **extra}


# -- failures -----------------------------------------------------------------------------------


def guarded(step: Callable[..., Any], failures: list[UserError]) -> Callable[..., Any]:
    """A doit action that reports a :class:`UserError` as a clean task failure, no traceback.

    The error is also kept in ``failures``, so the CLI can print it the way every other command
    does.
    """

    @functools.wraps(step)
    def action(*args: Any) -> Any:
        try:
            step(*args)
        except UserError as error:
            failures.append(error)
            return TaskFailed("\n".join(error.lines()))
        except Exception as error:
            if isinstance(error, OSError) and error.errno in cache_db.FULL_ERRNOS:
                full = cache_db.cache_full(os.strerror(error.errno))  # not a bug: the disk
                failures.append(full)
                return TaskFailed(str(full))
            # a bug: one line, the traceback on request
            if os.environ.get("DOCKER_WORKFLOW_DEBUG") == "1":
                raise
            bug = UserError(
                f"internal error in {step.__name__}: {error!r} (DOCKER_WORKFLOW_DEBUG=1 shows"
                " the traceback)"
            )
            failures.append(bug)
            return TaskFailed(str(bug))
        return None

    return action


# -- the tasks ----------------------------------------------------------------------------------


def _source_files(target: Target) -> list[str]:
    """The workflow files of the target's tree and every registry file its tools may use."""
    return list(_source_files_of(target.workflow, tuple(target.options.tools_dirs or ())))


@functools.cache
def _source_files_of(workflow: Path, tools_dirs: tuple[Path, ...]) -> tuple[str, ...]:
    # Once per process: analyze and shake depend on the same files.
    registry = Registry.for_workflow(workflow, list(tools_dirs))
    return (*(rel(p) for p in scan_files(workflow)), *(rel(p) for p in registry.files()))


def _engine_digest_file(target: Target) -> Path:
    return target.out / RUNNER_DIR / ENGINE_DIR / ".digest"


def _compile_input(target: Target) -> Path:
    """What the compile reads: the shared program, or the workflow's whole engine."""
    folder = PROGRAM_DIR if layers_modules(target.options.compiler) else ENGINE_DIR
    return target.out / RUNNER_DIR / folder / ".digest"


def _layer_marker(target: Target, platform: str) -> Path:
    return target.out / f"layer-{arch_of(platform)}.json"


def _layer_action(target: Target, platform: str) -> None:
    from rules.stages.modules_layer import build_layer

    prepared = load_prepared(target.out)
    program = compile_marker_dir(target, platform)
    folder = build_layer(layer_request(prepared, target.options, platform, program))
    marker = {"layer": str(folder.relative_to(cache_dir()))}
    atomic_write(_layer_marker(target, platform), json.dumps(marker, indent=2).encode())


def layer_marker_dir(target: Target, platform: str) -> Path:
    """The layer folder the layer step recorded for ``target`` on ``platform``."""
    marker = json.loads(_layer_marker(target, platform).read_text())
    return cache_dir() / marker["layer"]


def _layer_exists(target: Target, platform: str) -> bool:
    try:
        return (layer_marker_dir(target, platform) / ".meta" / "layer.json").is_file()
    except (OSError, ValueError, KeyError):
        return False


def target_layers(target: Target) -> dict[str, Path]:
    """Platform -> the layer folder of each platform (none for compilers without layers)."""
    if not layers_modules(target.options.compiler):
        return {}
    return {p: layer_marker_dir(target, p) for p in target.options.platforms}


def _compile_marker(target: Target, platform: str) -> Path:
    return target.out / f"compile-{arch_of(platform)}.json"


def _compile_action(target: Target, platform: str) -> None:
    from rules.docker.engine import ensure_engine
    from rules.stages.compile import compile_engine

    ensure_engine()  # one clear message when the engine is down, before any build
    prepared = load_prepared(target.out)
    folder = compile_engine(compile_request(prepared, target.options, platform))
    marker = {"compiled": str(folder.relative_to(cache_dir())), "engine": prepared.engine_digest}
    atomic_write(_compile_marker(target, platform), json.dumps(marker, indent=2).encode())


def compile_marker_dir(target: Target, platform: str) -> Path:
    """The compiled folder the compile step recorded for ``target`` on ``platform``."""
    marker = json.loads(_compile_marker(target, platform).read_text())
    return cache_dir() / marker["compiled"]


def _compiled_exists(target: Target, platform: str) -> bool:
    try:
        return (compile_marker_dir(target, platform) / "app").is_dir()
    except (OSError, ValueError, KeyError):
        return False


def image_request_of(target: Target):
    prepared = load_prepared(target.out)
    compiled = {p: compile_marker_dir(target, p) for p in target.options.platforms}
    return image_request(prepared, target.options, compiled, target_layers(target))


def _image_action(target: Target) -> None:
    from rules.docker.engine import ensure_engine
    from rules.docker.image_store import remove_tag
    from rules.stages.image import build_image

    ensure_engine()
    request = image_request_of(target)
    if target.force and not request.push and request.oci_path is None:
        remove_tag(request.tag)  # built again even when an image of this content has the tag
    build_image(request)
    atomic_write(target.out / "image.json", json.dumps(request.labels(), indent=2).encode())


def _image_exists(target: Target) -> bool:
    from rules.stages.image import image_is_current

    if target.force or target.options.push:
        return False
    try:
        return image_is_current(image_request_of(target))
    except (OSError, KeyError, ValueError, UserError):  # an engine that is down: the step says so
        return False


class BuildGraph:
    """The doit tasks of ``targets``; the :class:`UserError` of each failed step in ``failures``.

    The targets are read when doit asks for the tasks, so ``dodo.py`` may declare after it
    makes the graph; ``doit VAR=value`` overrides apply then too.
    """

    def __init__(self, targets: Mapping[str, Target]) -> None:
        self.targets = targets
        self.failures: list[UserError] = []
        self.loaded: dict[Path, Any] = {}  # a target's tree, from its analysis to its shake
        self._labels_wanted = False

    def task_creators(self) -> dict[str, Callable[[], Iterator[dict]]]:
        """``task_<step>`` -> creator: the names doit finds task creators by."""
        return {name: getattr(self, name) for name in TASK_NAMES}

    def _each(self) -> Iterator[Target]:
        for target in self.targets.values():
            yield apply_command_line(target, get_var)

    def _workflow_step(self, target: Target, step, module: str, produces: str, after) -> dict:
        """A task that reads the workflow tree and its tool registry (analyze and shake)."""
        options = target.options
        arguments = [target.workflow, target.out, options.tools_dirs, options.model, self.loaded]
        return {
            "name": target.name,
            "actions": [(guarded(step, self.failures), arguments)],
            "file_dep": [*after, *_source_files(target)],
            "targets": [rel(target.out / produces)],
            "uptodate": [config_changed(_config(target, module, "model", "tools_dirs"))],
            "clean": True,
        }

    def task_analyze(self) -> Iterator[dict]:
        """Analyze each workflow: tools, models, modules, packages (analysis.json)."""
        for target in self._each():
            yield self._workflow_step(
                target, step_analyze, "rules.stages.analyze", ANALYSIS_FILE, []
            )

    def task_shake(self) -> Iterator[dict]:
        """Tree-shake each workflow into its bundle (bundle.json)."""
        for target in self._each():
            after = [rel(target.out / ANALYSIS_FILE)]
            yield self._workflow_step(target, step_shake, "rules.stages.shake", BUNDLE_FILE, after)

    def task_lock(self) -> Iterator[dict]:
        """Resolve each workflow's pip packages for its platforms (lock.json; none: empty)."""
        for target in self._each():
            platforms = target.options.platforms
            yield {
                "name": target.name,
                "actions": [(guarded(step_lock, self.failures), [target.out, platforms])],
                "file_dep": [rel(target.out / ANALYSIS_FILE)],
                "targets": [rel(target.out / LOCK_FILE)],
                "uptodate": [config_changed(_config(target, "rules.stages.lock", "platforms"))],
                "clean": True,
            }

    def task_render(self) -> Iterator[dict]:
        """Render the runner: the engine (compiled) and the bundle (data)."""
        for target in self._each():
            out = target.out
            yield {
                "name": target.name,
                "actions": [(guarded(step_render, self.failures), [out])],
                "file_dep": [rel(out / f) for f in (ANALYSIS_FILE, BUNDLE_FILE, LOCK_FILE)],
                "targets": [
                    rel(_engine_digest_file(target)),
                    rel(out / RUNNER_DIR / PROGRAM_DIR / ".digest"),
                    rel(out / RUNNER_DIR / BUNDLE_FILE),
                ],
                "uptodate": [config_changed(_config(target, "rules.stages.render"))],
                "clean": True,
            }

    def task_compile(self) -> Iterator[dict]:
        """Compile the engine once per platform (content-addressed; shared between targets).

        A foreign platform's compile comes after the native one: Nuitka's module cache is
        shared by the platforms (``compile.sh``), so the native compile, at full speed, fills
        it for the emulated one (its Python part: about 285 s cold, 45 s warm, docs/IMAGES.md).
        doit keeps ``file_dep`` in a set, so without ``task_dep`` the image task would run
        its compiles in an order that changes from one process to the next.
        """
        from rules.stages.toolchain import host_arch  # only when compiling: doit loads this

        native = host_arch()
        for target in self._each():
            archs = [arch_of(platform) for platform in target.options.platforms]
            for platform in target.options.platforms:
                config = _config(
                    target,
                    "rules.stages.compile",
                    "compiler",
                    "cross",
                    builder=target.options.resolved_builder(),
                )
                foreign = arch_of(platform) != native and native in archs
                yield {
                    "name": f"{target.name}-{arch_of(platform)}",
                    "actions": [(guarded(_compile_action, self.failures), [target, platform])],
                    "file_dep": [rel(_compile_input(target))],
                    "task_dep": [f"compile:{target.name}-{native}"] if foreign else [],
                    "targets": [rel(_compile_marker(target, platform))],
                    "uptodate": [config_changed(config), (_compiled_exists, [target, platform])],
                    "clean": True,
                }

    def task_layer(self) -> Iterator[dict]:
        """The workflow's modules and wheels per platform, beside the shared program (nuitka)."""
        for target in self._each():
            if not layers_modules(target.options.compiler):
                continue
            out = target.out
            for platform in target.options.platforms:
                config = _config(
                    target, "rules.stages.modules_layer", builder=target.options.resolved_builder()
                )
                yield {
                    "name": f"{target.name}-{arch_of(platform)}",
                    "actions": [(guarded(_layer_action, self.failures), [target, platform])],
                    "file_dep": [
                        rel(out / ANALYSIS_FILE),
                        rel(out / LOCK_FILE),
                        rel(_compile_marker(target, platform)),
                    ],
                    "targets": [rel(_layer_marker(target, platform))],
                    "uptodate": [config_changed(config), (_layer_exists, [target, platform])],
                    "clean": True,
                }

    def _want_all_image_labels(self) -> None:
        """Name every target's tag to the image store at once: one engine query answers all."""
        from rules.docker.image_store import want_labels
        from rules.stages.image_names import default_tag
        from rules.stages.prepared import read_analysis

        if self._labels_wanted:
            return
        self._labels_wanted = True
        for target in self.targets.values():
            try:
                tag = target.options.tag or default_tag(read_analysis(target.out).workflow_id)
                want_labels(tag)
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def _image_exists(self, target: Target) -> bool:
        self._want_all_image_labels()
        return _image_exists(target)

    def task_image(self) -> Iterator[dict]:
        """Build each image: the compiled layer (shared) plus the bundle layer (per workflow)."""
        for target in self._each():
            out = target.out
            keys = ("tag", "runtime", "push", "oci_path", "platforms")
            yield {
                "name": target.name,
                "actions": [(guarded(_image_action, self.failures), [target])],
                "file_dep": [
                    rel(out / RUNNER_DIR / BUNDLE_FILE),
                    *(rel(_compile_marker(target, p)) for p in target.options.platforms),
                    *(
                        rel(_layer_marker(target, p))
                        for p in target.options.platforms
                        if layers_modules(target.options.compiler)
                    ),
                ],
                "targets": [rel(out / "image.json")],
                "uptodate": [
                    config_changed(_config(target, "rules.stages.image", *keys)),
                    (self._image_exists, [target]),
                ],
                "clean": True,
            }


TASK_NAMES = (
    "task_analyze",
    "task_shake",
    "task_lock",
    "task_render",
    "task_compile",
    "task_layer",
    "task_image",
)


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
