"""Image size, compile times and container start-up, per platform, against baselines.

Measured in this run, for a workflow without LLM steps (parallel_profile):
* image size, compressed (what a registry stores and a pull moves) and on disk, next to a naive
  image made the way the spec's design would: CPython and the runner source on the builder base;
* cold build (BuildKit cache mounts pruned, BuildKit's step cache bypassed: both platforms'
  compiles from nothing) and warm compile per platform (the engine changed by a comment, so the
  compile runs again on warm ccache and Nuitka caches);
* container start-to-exit (``docker run --rm``) next to ``docker run`` of a static busybox
  ``true`` (from Debian's busybox-static), medians.

Run: ``.venv/bin/python bench/images.py [--platform linux/amd64,linux/arm64] [--runs N]
[--skip-cold]``. Cold arm64 compiles under QEMU take several minutes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, median_ms, print_table, run_quiet, timed

from rules.build import build_workflow
from rules.compile import compile_engine
from rules.options import BuildOptions, compile_request
from rules.platforms import parse_platforms

WORKFLOW = ROOT / "workflows" / "parallel_profile.json"
INPUTS = '{"data": "alpha beta gamma"}'


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--platform", default="linux/amd64,linux/arm64")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-cold", action="store_true", help="do not prune the compile caches")
    args = parser.parse_args()
    platforms = parse_platforms(args.platform)
    os.environ.setdefault("DOCKER_WORKFLOW_CACHE", tempfile.mkdtemp(prefix="bench-images-"))
    options = BuildOptions(platforms=platforms, tag="bench-profile:latest")
    builder = options.resolved_builder()

    compile_rows = []
    if not args.skip_cold:
        # Cold: no ccache/Nuitka cache mounts, and no BuildKit memory of earlier compiles.
        run_quiet(["docker", "buildx", "prune", "-f", "--filter", "type=exec.cachemount"])
        os.environ["DOCKER_WORKFLOW_NO_CACHE"] = "1"
    started = time.perf_counter()
    result = build_workflow(WORKFLOW, options)
    total_cold = time.perf_counter() - started
    os.environ.pop("DOCKER_WORKFLOW_NO_CACHE", None)
    prepared = result.prepared
    for platform in platforms:
        # Warm: the same engine with one comment more compiles again on warm caches.
        warm_engine = Path(tempfile.mkdtemp(prefix="warm-engine-")) / "engine"
        shutil.copytree(prepared.engine_dir, warm_engine)
        with (warm_engine / "main.py").open("a") as handle:
            handle.write(f"# warm compile probe {time.time()}\n")
        request = replace(
            compile_request(prepared, options, platform),
            engine_dir=warm_engine,
            engine_digest=f"warm-{time.time()}",
        )
        started = time.perf_counter()
        compile_engine(request)
        compile_rows.append([platform, f"{time.perf_counter() - started:.1f} s"])

    oci = Path(tempfile.mkdtemp(prefix="bench-oci-"))
    ours_tar, naive_tar = oci / "ours.tar", oci / "naive.tar"
    build_workflow(WORKFLOW, BuildOptions(platforms=platforms, oci_path=ours_tar))
    naive_image(builder, prepared.out_dir, platforms, naive_tar)
    ours, naive = oci_sizes(ours_tar), oci_sizes(naive_tar)
    mb = 1024 * 1024
    size_rows = []
    for platform in platforms:
        (oc, ou), (nc, nu) = ours[platform], naive[platform]
        size_rows.append(
            [
                platform,
                f"{oc / mb:.1f} MB",
                f"{ou / mb:.1f} MB",
                f"{nc / mb:.1f} MB",
                f"{nu / mb:.1f} MB",
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
    print_table(
        f"compile (cold build of everything: {total_cold:.1f} s)",
        ["platform", "warm recompile"],
        compile_rows,
    )

    busybox = busybox_image()
    start_rows = []
    for platform in platforms:
        ours_run = timed(
            lambda p=platform: run_quiet(
                [
                    "docker",
                    "run",
                    "--rm",
                    "-i",
                    "--platform",
                    p,
                    "--network",
                    "none",
                    "bench-profile:latest",
                ],
                input=INPUTS,
            ),
            args.runs,
        )
        if platform == "linux/amd64":
            box = timed(lambda: run_quiet(["docker", "run", "--rm", busybox]), args.runs)
            ratio = f"{median_ms(ours_run) / median_ms(box):.2f}x"
            box_ms = f"{median_ms(box):.0f}"
        else:
            box_ms, ratio = "(amd64 only)", ""
        start_rows.append([platform, f"{median_ms(ours_run):.0f}", box_ms, ratio])
    print_table(
        "container start to exit (median ms)",
        ["platform", "workflow image", "busybox true", "ratio"],
        start_rows,
    )


if __name__ == "__main__":
    main()
