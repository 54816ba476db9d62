"""Image size, compile times and container start-up, per platform, each beside its baseline.

Measured in this run, for an LLM-only workflow (simple_summarizer):
* cold compile per platform (BuildKit cache mounts pruned, its step cache bypassed), with the C
  part of the arm64 compile run natively by Zig (``--cross auto``, the default) beside the
  emulated compile (``--cross off``, everything under QEMU, per-platform caches: the previous
  way); the cold two-platform build total;
* warm recompile per platform after a one-module change (a comment in ``main.py``), both ways;
* reproducibility: the compile again from scratch gives the same bytes;
* image size, compressed and on disk, beside a naive image made the way the spec's design would
  (CPython and the runner source on the builder base);
* a workflow with ``requests`` (an embedded ``source_code`` tool with ``requirements``): its
  cold two-platform build, warm one-module recompile and image size (wheels from
  cache/test-wheelhouse when present);
* each size measure alone (amd64): the program compiled with one measure switched off
  (``-Os``, LTO, bytecode without column tables, dropping the CJK codecs, no docstrings), and
  with all of them off (the previous flags); what the libc closure weighs; whether the program
  is already stripped;
* container start to exit (``--describe``: load the bundle, print, exit) beside ``docker run``
  of a static busybox ``true`` (the two run in turn), and beside the previous flags, medians;
  the calculator's ``--serve`` memory, idle after start (amd64).

Run: ``.venv/bin/python bench/images.py [--platform linux/amd64,linux/arm64] [--runs N]
[--skip-cold] [--skip-emulated] [--skip-sizes] [--only compile,size,requests,measures,start]``.
The emulated cold arm64 compile takes about twelve minutes; the whole run about an hour.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from common import ROOT, median_ms, print_table, run_quiet, timed
from wheels import offline_index

from rules.graph.build import build_workflow, prepare
from rules.graph.options import BuildOptions, compile_request
from rules.platforms import parse_platforms
from rules.stages.compile import CompileRequest, compile_engine, compiled_dir

WORKFLOW = ROOT / "workflows" / "simple_summarizer.json"
CALCULATOR = ROOT / "workflows" / "calculator.json"


def oci_sizes(tarball: Path) -> dict[str, tuple[int, int]]:
    """platform -> (compressed bytes, unpacked bytes) of every image in an OCI tarball."""
    sizes = {}
    with tarfile.open(tarball) as archive:

        def blob(digest: str) -> bytes:
            algorithm, value = digest.split(":")
            return archive.extractfile(f"blobs/{algorithm}/{value}").read()

        def walk(index: dict) -> None:
            for entry in index.get("manifests", []):
                document = json.loads(blob(entry["digest"]))
                if "manifests" in document:
                    walk(document)
                    continue
                platform = entry.get("platform") or {}
                if platform.get("os") in (None, "unknown"):
                    continue
                compressed = unpacked = 0
                for layer in document["layers"]:
                    data = blob(layer["digest"])
                    compressed += len(data)
                    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
                    with tarfile.open(fileobj=io.BytesIO(raw)) as layer_tar:
                        unpacked += sum(m.size for m in layer_tar.getmembers() if m.isfile())
                sizes[f"{platform['os']}/{platform['architecture']}"] = (compressed, unpacked)

        walk(json.loads(archive.extractfile("index.json").read()))
    return sizes


def naive_image(builder: str, runner_dir: Path, platforms: list[str], out: Path) -> None:
    """The spec's way: the builder's CPython plus the runner source, one image."""
    context = Path(tempfile.mkdtemp(prefix="naive-"))
    shutil.copytree(runner_dir / "engine", context / "app")
    shutil.copy(runner_dir / "bundle.json", context / "app" / "bundle.json")
    (context / "Dockerfile").write_text(
        f'FROM {builder}\nCOPY app/ /app/\nENTRYPOINT ["python3", "/app/main.py"]\n'
    )
    run_quiet(
        [
            "docker",
            "buildx",
            "build",
            "--platform",
            ",".join(platforms),
            "--provenance=false",
            "--output",
            f"type=oci,dest={out}",
            str(context),
        ]
    )
    shutil.rmtree(context)


def busybox_image() -> str:
    busybox = Path("/bin/busybox")
    linked = subprocess.run(["ldd", str(busybox)], capture_output=True, text=True, check=False)
    if not busybox.exists() or "not a dynamic executable" not in linked.stdout + linked.stderr:
        raise SystemExit("needs a static /bin/busybox: apt-get install busybox-static")
    context = Path(tempfile.mkdtemp(prefix="busybox-"))
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT ["/busybox", "true"]\n'
    )
    run_quiet(["docker", "buildx", "build", "--load", "-t", "bench-busybox:static", str(context)])
    return "bench-busybox:static"


TUNINGS = {
    "-Os": "no-os",
    "LTO (gcc)": "no-lto",
    "no column tables": "debug-ranges",
    "no CJK codecs": "keep-cjk",
    "no docstrings": "docstrings",
    "packed relative relocations": "no-relr",
    "the engine as bytecode": "compiled-engine",
    "the standard library and the engine zipped beside the program": "no-zip",
    "only the start-up codecs as early imports": "all-codecs",
    "built-ins left to the layer (rules/stages/program_builtins.py)": "all-builtins",
    "no deep-frozen modules (rules/docker/build/frozen.py)": "deepfreeze",
}
MB = 1024 * 1024
SECTIONS = ("compile", "size", "requests", "measures", "start")


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def tree_digest(folder: Path) -> str:
    """Digest of what goes into the image: the compiled files without ``.meta/``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not path.is_symlink() and relative.parts[0] != ".meta":
            digest.update(str(relative).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cold_caches() -> None:
    """A fresh machine's BuildKit: no step cache, no ccache/Nuitka/Zig cache mounts (the
    builder image stays: making it is setup, once per machine)."""
    run_quiet(["docker", "buildx", "prune", "-af"])


def compile_timed(request: CompileRequest, no_cache: bool = False) -> tuple[float, Path]:
    """Seconds for one compile, forgetting an earlier result of the same request.

    ``no_cache``: BuildKit runs every step again on fresh cache mounts (a from-scratch compile
    without pruning anything).
    """
    shutil.rmtree(compiled_dir(request), ignore_errors=True)
    if no_cache:
        os.environ["DOCKER_WORKFLOW_NO_CACHE"] = "1"
    try:
        started = time.perf_counter()
        out = compile_engine(request)
        return time.perf_counter() - started, out
    finally:
        os.environ.pop("DOCKER_WORKFLOW_NO_CACHE", None)


def one_module_changed(request: CompileRequest) -> CompileRequest:
    """The same engine with a comment more in main.py: Nuitka recompiles that module only."""
    engine = Path(tempfile.mkdtemp(prefix="warm-engine-")) / "engine"
    shutil.copytree(request.engine_dir, engine)
    with (engine / "main.py").open("a") as handle:
        handle.write(f"# warm compile probe {time.time()}\n")
    return replace(request, engine_dir=engine, engine_digest=f"warm-{time.time()}")


def compile_figures(prepared, options, platforms, args) -> list[list[str]]:
    """Cold, warm and again-from-scratch compiles per platform; then the emulated baseline
    (last: its cold start prunes the caches the other figures need warm)."""
    requests = {p: compile_request(prepared, options, p) for p in platforms}
    cold: dict[str, float] = {}
    if not args.skip_cold:
        cold_caches()
        for platform, request in requests.items():  # amd64 first, as a build does
            cold[platform], _ = compile_timed(request)
    warm: dict[str, float] = {}
    same: dict[str, str] = {}
    for platform, request in requests.items():
        before = tree_digest(compile_engine(request))
        warm[platform], _ = compile_timed(one_module_changed(request))
        _, again = compile_timed(request, no_cache=True)
        same[platform] = "yes" if tree_digest(again) == before else "NO"
    emulated: dict[str, float] = {}
    emulated_warm: dict[str, float] = {}
    for platform, request in requests.items():
        if request.cross_compiler and not args.skip_emulated:
            off = replace(request, cross="off")
            if not args.skip_cold:
                cold_caches()  # the previous way: no cache shared with the amd64 compile
                emulated[platform], _ = compile_timed(off)
            compile_engine(off)
            emulated_warm[platform], _ = compile_timed(one_module_changed(off))

    def seconds(figures: dict[str, float], platform: str) -> str:
        return f"{figures[platform]:.0f} s" if platform in figures else "-"

    rows = [
        [
            platform,
            seconds(cold, platform),
            seconds(emulated, platform),
            seconds(warm, platform),
            seconds(emulated_warm, platform),
            same[platform],
        ]
        for platform in platforms
    ]
    if cold:
        total = sum(cold.values())
        previous = sum(emulated.get(p, cold[p]) for p in cold)
        rows.append(["compiles, sequential", f"{total:.0f} s", f"{previous:.0f} s", "", "", ""])
        amd, arm = cold.get("linux/amd64"), cold.get("linux/arm64")
        if amd and arm:
            ratio = f"arm64/amd64 {arm / amd:.1f}x"
            if "linux/arm64" in emulated:
                ratio += f" (emulated {emulated['linux/arm64'] / amd:.1f}x)"
            rows.append(["ratio", ratio, "", "", "", ""])
    return rows


def tuned_sizes(prepared, options) -> tuple[list[list[str]], Path, Path]:
    """amd64 program size with each measure alone switched off, and all of them."""
    base = compile_request(prepared, options, "linux/amd64")
    current = compile_engine(base)
    current_bytes = tree_bytes(current)
    rows = [["all measures on (current)", f"{current_bytes / MB:.2f} MB", ""]]
    for label, word in TUNINGS.items():
        out = compile_engine(replace(base, tuning=(word,)))
        saved = tree_bytes(out) - current_bytes
        rows.append([f"without {label}", f"{tree_bytes(out) / MB:.2f} MB", f"{saved / MB:+.2f} MB"])
    previous = compile_engine(replace(base, tuning=tuple(TUNINGS.values())))
    previous_bytes = tree_bytes(previous)
    rows.append(
        [
            "all off (previous flags)",
            f"{previous_bytes / MB:.2f} MB",
            f"{(previous_bytes - current_bytes) / MB:+.2f} MB",
        ]
    )
    closure = sum(
        p.stat().st_size
        for p in current.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and "app" not in p.relative_to(current).parts[:1]
        and not p.relative_to(current).parts[0].startswith(".")
    )
    rows.append(
        ["of which the libc closure (ld-linux, libc, libm, libz)", f"{closure / MB:.2f} MB", ""]
    )
    program = current / "app" / "workflow"
    described = subprocess.run(["file", str(program)], capture_output=True, text=True, check=False)
    stripped = "stripped" in described.stdout and "not stripped" not in described.stdout
    rows.append(["program already stripped", "yes" if stripped else "no", ""])
    return rows, current, previous


def image_from(compiled: Path, bundle: Path, tag: str) -> str:
    """A FROM-scratch image of one compiled tree and a bundle, as the image step lays it out."""
    context = Path(tempfile.mkdtemp(prefix="tuned-image-"))
    shutil.copytree(compiled, context / "root", symlinks=True)
    shutil.rmtree(context / "root" / ".meta", ignore_errors=True)
    shutil.copy(bundle, context / "root" / "app" / "bundle.json")
    os.chmod(context / "root" / "app" / "bundle.json", 0o644)  # the image runs as 65532
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY root/ /\nUSER 65532:65532\nENTRYPOINT ["/app/workflow"]\n'
    )
    run_quiet(["docker", "buildx", "build", "--load", "-t", tag, str(context)])
    shutil.rmtree(context)
    return tag


def start_median(image: str, platform: str, runs: int, *args: str) -> float:
    command = ["docker", "run", "--rm", "--platform", platform, "--network", "none", image, *args]
    return median_ms(timed(lambda: run_quiet(command), runs))


REQUESTS_TOOL = """
import json, sys
import requests
args = json.load(sys.stdin)
reply = requests.get(args["url"], timeout=10)
print(json.dumps({"status": reply.status_code}))
"""


def requests_workflow(folder: Path) -> Path:
    """A workflow in the original's format whose embedded tool needs ``requests``."""
    path = folder / "requests_fetch.json"
    path.write_text(
        json.dumps(
            {
                "workflow_id": "requests_fetch",
                "version": "1.0.0",
                "inputs": {"url": {"type": "string", "required": True}},
                "outputs": {"status": {"source_reference": "steps.fetch.result"}},
                "steps": [
                    {
                        "step_id": "fetch",
                        "type": "existing_tool",
                        "tool": "fetch",
                        "input_mapping": {"url": "inputs.url"},
                        "output_name": "result",
                    }
                ],
                "tools": {
                    "fetch": {
                        "tool_id": "fetch",
                        "type": "python",
                        "source_code": REQUESTS_TOOL,
                        "requirements": ["requests==2.32.3"],
                    }
                },
            }
        )
    )
    return path


def where_the_bytes_go(result) -> list[list[str]]:
    """On-disk bytes per part of the image, per platform: the shared program's layer (the
    program, its extension modules, the libc closure) and the workflow's module layer."""
    rows = []
    for platform in sorted(result.compiled):
        parts: dict[str, int] = {}
        program = result.compiled[platform]
        for path in program.rglob("*"):
            relative = path.relative_to(program)
            if relative.parts[0] == ".meta" or not path.is_file() or path.is_symlink():
                continue
            if relative.as_posix() == "app/workflow":
                part = "program: the compiled engine with libpython and its modules"
            elif relative.parts[0] == "app":
                part = "program: extension modules and libraries beside it"
            else:
                part = "program: the libc closure (ld-linux, libc, libm, libz, libgcc_s)"
            parts[part] = parts.get(part, 0) + path.stat().st_size
        layer = result.layers.get(platform)
        if layer is not None:
            manifest = json.loads((layer / ".meta" / "layer.json").read_text())
            libraries = {p.lstrip("/") for p in manifest["libraries"]}
            for path in layer.rglob("*"):
                relative = path.relative_to(layer).as_posix()
                if relative.startswith(".meta") or not path.is_file() or path.is_symlink():
                    continue
                if relative in libraries:
                    part = "layer: shared libraries of its extension modules"
                elif relative.startswith("etc/"):
                    part = "layer: the CA bundle"
                elif path.suffix == ".so" or ".so." in path.name:
                    part = "layer: extension modules (stdlib and wheels)"
                else:
                    part = "layer: bytecode and package files"
                parts[part] = parts.get(part, 0) + path.stat().st_size
        total = sum(parts.values())
        for part, size in sorted(parts.items()):
            rows.append([platform, part, f"{size / MB:.2f} MB"])
        rows.append([platform, "total (without bundle and SBOM)", f"{total / MB:.2f} MB"])
    return rows


def requests_figures(platforms: list[str], args) -> list[list[str]]:
    """The requests workflow's two-platform build (the program compiled already unless cold:
    a tool gained a package whose wheels are cached), its size and where the bytes go."""
    wheelhouse = ROOT / "cache" / "test-wheelhouse"
    if wheelhouse.is_dir():  # scripts/wheelhouse.sh: no package index needed
        os.environ.update(offline_index(wheelhouse))
    path = requests_workflow(Path(tempfile.mkdtemp(prefix="bench-requests-")))
    tarball = path.parent / "image.tar"
    options = BuildOptions(platforms=platforms, oci_path=tarball)
    if not args.skip_cold:
        cold_caches()
    started = time.perf_counter()
    result = build_workflow(path, options)
    build_seconds = time.perf_counter() - started
    sizes = oci_sizes(tarball)
    rows = []
    for platform in platforms:
        compressed, unpacked = sizes[platform]
        rows.append([platform, f"{compressed / MB:.1f} MB", f"{unpacked / MB:.1f} MB"])
    label = "cold" if not args.skip_cold else "program compiled, wheels cached:"
    rows.append([f"{label} build, all platforms", f"{build_seconds:.1f} s", ""])
    print_table(
        "where the MBs go (requests)", ["platform", "part", "on disk"], where_the_bytes_go(result)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", default="linux/amd64,linux/arm64")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-cold", action="store_true", help="no cold compiles")
    parser.add_argument("--skip-emulated", action="store_true", help="no --cross off baseline")
    parser.add_argument("--skip-sizes", action="store_true", help="no per-measure compiles")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if sections - set(SECTIONS):
        raise SystemExit(f"unknown sections {sorted(sections - set(SECTIONS))}; have {SECTIONS}")
    platforms = parse_platforms(args.platform)
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-images-"))
    options = BuildOptions(platforms=platforms, tag="bench-summarizer:latest")
    builder = options.resolved_builder()
    prepared = prepare(WORKFLOW, platforms=platforms)

    if "compile" in sections:
        print_compile_table(prepared, options, platforms, args)
    if "size" in sections:
        print_size_table(builder, options, platforms)
    if "requests" in sections:
        print_table(
            "a workflow with requests (original format, source_code + requirements)",
            ["platform", "compressed", "on disk"],
            requests_figures(platforms, args),
        )
    previous_image = None
    if "measures" in sections and not args.skip_sizes and "linux/amd64" in platforms:
        previous_image = print_measures_table(prepared, options)
    if "start" in sections:
        if previous_image is None and "linux/amd64" in platforms and not args.skip_sizes:
            base = compile_request(prepared, options, "linux/amd64")
            previous = compile_engine(replace(base, tuning=tuple(TUNINGS.values())))
            previous_image = image_from(
                previous, prepared.bundle_path, "bench-summarizer:previous-flags"
            )
        build_workflow(WORKFLOW, options)
        print_start_table(options, platforms, args, previous_image)


def print_compile_table(prepared, options, platforms, args) -> None:
    compile_rows = compile_figures(prepared, options, platforms, args)
    print_table(
        "compile (cross auto: Zig does arm64's C part natively; emulated: --cross off, the "
        "previous way)",
        ["platform", "cold", "cold emulated", "warm, one module", "warm emulated", "reproducible"],
        compile_rows,
    )


def print_size_table(builder, options, platforms) -> None:
    oci = Path(tempfile.mkdtemp(prefix="bench-oci-"))
    ours_tar, naive_tar = oci / "ours.tar", oci / "naive.tar"
    build_workflow(WORKFLOW, replace(options, oci_path=ours_tar, tag=None))
    result = build_workflow(WORKFLOW, options)
    print_table(
        "where the MBs go (LLM-only)", ["platform", "part", "on disk"], where_the_bytes_go(result)
    )
    naive_image(builder, result.prepared.out_dir, platforms, naive_tar)
    ours, naive = oci_sizes(ours_tar), oci_sizes(naive_tar)
    size_rows = []
    for platform in platforms:
        (oc, ou), (nc, nu) = ours[platform], naive[platform]
        size_rows.append(
            [
                platform,
                f"{oc / MB:.1f} MB",
                f"{ou / MB:.1f} MB",
                f"{nc / MB:.1f} MB",
                f"{nu / MB:.1f} MB",
                f"{nc / oc:.1f}x",
            ]
        )
    print_table(
        "image size",
        [
            "platform",
            "ours compressed",
            "ours on disk",
            "naive compressed",
            "naive on disk",
            "naive / ours (compressed)",
        ],
        size_rows,
    )


def print_measures_table(prepared, options) -> str:
    """Each size measure alone; returns the tag of an image made with the previous flags."""
    rows, _, previous = tuned_sizes(prepared, options)
    print_table(
        "size measures, each alone (amd64 program and libraries on disk)",
        ["variant", "size", "vs current"],
        rows,
    )
    return image_from(previous, prepared.bundle_path, "bench-summarizer:previous-flags")


def interleaved_medians(runs: int, *commands: list[str]) -> list[float]:
    """The median ms of each command, run in turn ``runs`` times: load from other jobs on
    this shared machine then falls on all of them alike."""
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for command, taken in zip(commands, samples, strict=True):
            taken.append(timed(lambda command=command: run_quiet(command), 1)[0])
    return [median_ms(taken) for taken in samples]


def start_command(image: str, platform: str, *args: str) -> list[str]:
    return ["docker", "run", "--rm", "--platform", platform, "--network", "none", image, *args]


def print_start_table(options, platforms, args, previous_image: str | None) -> None:
    busybox = busybox_image()
    start_rows = []
    for platform in platforms:
        row = [platform]
        if platform == "linux/amd64":
            ours_ms, box_ms = interleaved_medians(
                args.runs,
                start_command(options.tag, platform, "--describe"),
                start_command(busybox, platform),
            )
            row += [f"{ours_ms:.0f}", f"{box_ms:.0f}", f"{ours_ms / box_ms:.2f}x"]
            if previous_image:
                old_ms = start_median(previous_image, platform, args.runs, "--describe")
                row += [f"{old_ms:.0f}", f"{ours_ms / old_ms:.2f}x"]
        else:
            row.append(f"{start_median(options.tag, platform, args.runs, '--describe'):.0f}")
        start_rows.append(row + [""] * (6 - len(row)))
    print_table(
        "container start to exit, --describe (median ms)",
        [
            "platform",
            "workflow image",
            "busybox true",
            "vs busybox",
            "previous flags",
            "vs previous",
        ],
        start_rows,
    )
    print_table(
        "the calculator's --serve, idle after start (amd64, /proc/PID/status of its program)",
        ["resident", "anonymous", "file-backed"],
        [serve_memory()],
    )


def serve_memory() -> list[str]:
    """The resident memory of the calculator's service in its image (amd64), idle after
    start and one request: the kernel's own count, which ``docker stats`` (the cgroup's,
    page cache included) is not."""
    options = BuildOptions(platforms=("linux/amd64",), tag="bench-calculator:latest")
    build_workflow(CALCULATOR, options)
    container = run_quiet(
        ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", options.tag, "--serve"]
    ).stdout.strip()
    try:
        port = run_quiet(["docker", "port", container, "8080/tcp"]).stdout.split(":")[-1]
        url = f"http://127.0.0.1:{port.strip()}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"a": 6, "b": 7, "operation": "multiply"}).encode()
        ask = urllib.request.Request(f"{url}/invoke", body, {"Content-Type": "application/json"})
        urllib.request.urlopen(ask, timeout=10).read()
        time.sleep(1)
        pid = run_quiet(["docker", "inspect", "-f", "{{.State.Pid}}", container]).stdout.strip()
        status = Path(f"/proc/{pid}/status").read_text()
    finally:
        run_quiet(["docker", "rm", "-f", container])
    kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(\w+):\s+(\d+ kB)$", status, re.M)}
    return [f"{kib[name] / 1024:.1f} MB" for name in ("VmRSS", "RssAnon", "RssFile")]


if __name__ == "__main__":
    main()
