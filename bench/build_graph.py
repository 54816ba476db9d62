"""The incremental build graph against the naive single-Dockerfile build, measured in one run.

In a temporary copy of this repository's workflows (plus copies, to make eight), for one
platform:
* cold build of every workflow (``--cold`` prunes BuildKit's caches first);
* no-op ``doit``, and where its time goes: the interpreter, importing doit, loading the graph
  (``doit list``), and the up-to-date checks (the rest);
* prompt edit -> new image; tool-code edit -> new image (the code is data: no compile);
  tool-import edit -> new image (a standard-library module the shared program leaves out: the
  module layer, no compile); a tool that gains a pure-Python package whose wheels are cached
  (``requests`` from cache/test-wheelhouse, scripts/wheelhouse.sh) -> new image; a second new
  workflow -> its image (no compile); for each, which tasks ran (the compile tasks must not);
and the naive way, as the spec's design does it: one ``docker build`` of one Dockerfile that
installs Nuitka and compiles the runner with the workflow pasted in, for the same prompt edit
(first platform only; ``--skip-naive`` leaves it out).

Run: ``.venv/bin/python bench/build_graph.py [--platform linux/amd64,linux/arm64] [--cold]
[--skip-naive]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, run_quiet

from rules.stages.prepared import ENGINE_DIR
from rules.stages.toolchain import toolchain_dir

DODO = """
from rules.graph.targets import TARGETS, default_targets
from rules.graph.tasks import BuildGraph, doit_config
default_targets("workflows")
globals().update(BuildGraph(TARGETS).task_creators())
DOIT_CONFIG = doit_config()
"""
NAIVE_DOCKERFILE = """FROM {builder} AS build
COPY wheels/ /wheels/
RUN --network=none python3 -m venv --system-site-packages /venv \\
    && /venv/bin/pip install --quiet --no-index --no-build-isolation /wheels/*
COPY runner/ /src/
RUN --network=none cd /src/engine && /venv/bin/python -m nuitka --standalone --quiet \\
    --output-dir=/out --output-filename=workflow main.py
FROM {builder}
COPY --from=build /out/main.dist/ /app/
COPY runner/bundle.json /app/bundle.json
ENTRYPOINT ["/app/workflow"]
"""


def timed_run(command: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    run_quiet(command, cwd=cwd, env=env)
    return time.perf_counter() - started


def timed_tasks(command: list[str], cwd: Path, env: dict) -> tuple[float, list[str]]:
    """Seconds, and the tasks doit ran (its ``.  TASK`` lines)."""
    started = time.perf_counter()
    proc = run_quiet(command, cwd=cwd, env=env)
    seconds = time.perf_counter() - started
    output = (proc.stdout or "") + (proc.stderr or "")
    ran = [line.split()[1] for line in output.splitlines() if line.startswith(". ")]
    if "compiling the engine with" in output:  # the compile step's progress: a real compile
        ran.append("(a real compile)")
    return seconds, ran


def compiles(ran: list[str]) -> str:
    """The compile tasks that ran; a new target's compile task runs once and finds the shared
    program (a cache hit) unless a real compile is named."""
    found = [task for task in ran if task.startswith("compile:")]
    images = len([task for task in ran if task.startswith("image:")])
    if not found:
        return f"compile tasks: none ran; images built: {images}"
    hit = "" if "(a real compile)" in ran else " (cache hits: no compiler ran)"
    return f"compile tasks: {', '.join(found)}{hit}; images built: {images}"


PACKAGE_TOOL = """import json, sys
import requests
print(json.dumps({"text": requests.__version__}))
"""


def edit_prompt(path: Path, marker: str) -> None:
    data = json.loads(path.read_text())
    step = data["steps"][0]
    step["prompt_template"] = (step.get("prompt_template") or "{text}") + f" ({marker})"
    path.write_text(json.dumps(data, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--cold", action="store_true", help="prune BuildKit compile caches first")
    parser.add_argument("--skip-naive", action="store_true", help="no naive Dockerfile build")
    args = parser.parse_args()
    builder = os.environ.get("DOCKER_WORKFLOW_BUILDER_IMAGE")
    if not builder:
        raise SystemExit(
            "set DOCKER_WORKFLOW_BUILDER_IMAGE (scripts/setup.sh writes .builder-image)"
        )

    project = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    shutil.copytree(ROOT / "workflows", project / "workflows")
    shutil.copytree(ROOT / "tools", project / "tools")
    (project / "dodo.py").write_text(DODO)
    for number, source in enumerate(sorted((project / "workflows").glob("*.json"))):
        if len(list((project / "workflows").glob("*.json"))) >= 8:
            break
        data = json.loads(source.read_text())
        data["workflow_id"] = f"{data['workflow_id']}-copy{number}"
        (project / "workflows" / f"copy{number}.json").write_text(json.dumps(data, indent=2))
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_WORKFLOW_CACHE"}
    env["PYTHONPATH"] = str(ROOT)
    # As an installed docker-workflow runs: with its bytecode cached (pip writes it at install;
    # without it every no-op would compile two dozen modules from source).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    doit = [sys.executable, "-m", "doit", f"platforms={args.platform}"]
    count = len(list((project / "workflows").glob("*.json")))

    if args.cold:
        run_quiet(["docker", "buildx", "prune", "-af"])
    cold = timed_run(doit, project, env)
    noop = min(timed_run(doit, project, env) for _ in range(5))
    python = min(timed_run([sys.executable, "-c", "pass"], project, env) for _ in range(5))
    doit_import = min(
        timed_run([sys.executable, "-c", "import doit.doit_cmd"], project, env) for _ in range(5)
    )
    graph = min(timed_run([*doit, "list", "--all"], project, env) for _ in range(5))
    # Edits unique to this run: BuildKit remembers every earlier run's results.
    nonce = f"{time.time_ns()}"
    edit_prompt(project / "workflows" / "simple_summarizer.json", f"edited {nonce}")
    prompt = timed_run(doit, project, env)
    tool = project / "tools" / "executable" / "word_counter.py"
    tool.write_text(tool.read_text().replace("most_common(top)", "most_common(max(top, 0))"))
    code = timed_run(doit, project, env)
    tool.write_text("import wave  # a new import: the module layer changes\n" + tool.read_text())
    imports, imports_ran = timed_tasks(doit, project, env)
    wheelhouse = ROOT / "cache" / "test-wheelhouse"
    package = package_ran = None
    if wheelhouse.is_dir():
        from wheels import offline_index

        package_env = {**env, **offline_index(wheelhouse)}
        (project / "tools" / "executable" / "pkg_version.yaml").write_text(
            "name: pkg_version\ntype: executable\nrequirements: [requests==2.32.3]\n"
            "executable:\n"
            "  command: python\n  script: pkg_version.py\n"
        )
        (project / "tools" / "executable" / "pkg_version.py").write_text(PACKAGE_TOOL)
        data = json.loads((project / "workflows" / "calculator.json").read_text())
        data["steps"].append(
            {
                "step_id": "pkg",
                "type": "python_tool",
                "tool": "pkg_version",
                "input_mapping": {},
                "output_name": "pkg",
            }
        )
        (project / "workflows" / "calculator.json").write_text(json.dumps(data, indent=2))
        # Resolve and fetch once (the lock and cache/wheels), as an earlier edit would have.
        package, package_ran = timed_tasks([*doit, "lock:calculator"], project, package_env)
        package, package_ran = timed_tasks(doit, project, package_env)
    second_data = json.loads((project / "workflows" / "simple_summarizer.json").read_text())
    second_data["workflow_id"] = f"second-{nonce}"
    (project / "workflows" / "second.json").write_text(json.dumps(second_data, indent=2))
    second, second_ran = timed_tasks(doit, project, env)

    rows = [
        [
            "tool import edit -> new image (a standard-library module the program leaves"
            " out: the module layer)",
            f"{imports:.1f} s",
            compiles(imports_ran),
        ],
        [
            "a tool gains a pure-Python package, wheels cached (requests)",
            f"{package:.1f} s" if package is not None else "no test wheelhouse",
            compiles(package_ran or []),
        ],
        [
            "a second new workflow -> its image",
            f"{second:.1f} s",
            compiles(second_ran),
        ],
    ]
    print_table(f"edits that used to compile, {args.platform}", ["measure", "time", "graph"], rows)
    if args.skip_naive:
        return
    naive_platform = args.platform.split(",")[0]

    # The naive way: one Dockerfile, everything recompiled on any edit.
    naive = Path(tempfile.mkdtemp(prefix="bench-naive-"))
    (target,) = (project / "cache" / "targets").glob("simple_summarizer-*")
    runner = target / "runner"
    shutil.copytree(runner, naive / "runner", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(toolchain_dir("nuitka", "amd64"), naive / "wheels")
    (naive / "Dockerfile").write_text(NAIVE_DOCKERFILE.format(builder=builder))
    build = [
        "docker",
        "buildx",
        "build",
        "--platform",
        naive_platform,
        "--load",
        "-t",
        "bench-naive:latest",
        str(naive),
    ]
    naive_cold = timed_run([*build, "--no-cache"], naive, env)
    bundle = naive / "runner" / "bundle.json"
    bundle.write_text(bundle.read_text().replace("Summarize", f"Briefly ({nonce}) summarize"))
    with (naive / "runner" / ENGINE_DIR / "main.py").open("a") as main_py:
        main_py.write(f"# {nonce}\n")  # the spec's runner embeds the workflow in its source
    naive_prompt = timed_run(build, naive, env)

    print_table(
        f"build graph, {count} workflows, {args.platform}",
        ["measure", "docker-workflow", "naive Dockerfile", "naive / ours"],
        [
            [
                f"{'cold' if args.cold else 'first'} build ({count} workflows; naive: 1)"
                + ("" if args.cold else ", BuildKit cache warm"),
                f"{cold:.1f} s",
                f"{naive_cold:.1f} s",
                "",
            ],
            ["no-op rebuild", f"{noop:.2f} s", "", ""],
            ["  of which: the interpreter", f"{python:.2f} s", "", ""],
            ["  of which: importing doit", f"{doit_import - python:.2f} s", "", ""],
            ["  of which: loading the graph", f"{graph - doit_import:.2f} s", "", ""],
            ["  of which: the up-to-date checks", f"{noop - graph:.2f} s", "", ""],
            [
                "prompt edit -> new image",
                f"{prompt:.1f} s",
                f"{naive_prompt:.1f} s",
                f"{naive_prompt / prompt:.0f}x",
            ],
            [
                "tool code edit -> new image",
                f"{code:.1f} s",
                f"{naive_prompt:.1f} s",
                f"{naive_prompt / code:.0f}x",
            ],
            [
                "tool import edit -> new image (the module layer: no compile)",
                f"{imports:.1f} s",
                f"{naive_prompt:.1f} s",
                f"{naive_prompt / imports:.1f}x",
            ],
        ],
    )
    subprocess.run(["docker", "rmi", "-f", "bench-naive:latest"], capture_output=True)


if __name__ == "__main__":
    main()
