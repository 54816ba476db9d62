"""Images through the real engine: multi-arch build, real runs (LLM and QEMU), hardening, output
modes, reproducibility, tree-shaking in the binary, and the error messages of a failed build."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import WORKFLOWS, write_json
from image_inspect import (
    compiled_dirs,
    docker_run,
    image_files,
    image_id,
    image_platforms,
    labels,
    oci_platforms,
)

from rules.stages.sbom import REPORT, zip_manifest

BOTH = "linux/amd64,linux/arm64"
SUMMARIZER = WORKFLOWS / "simple_summarizer.json"  # from the compatibility corpus
PROFILE = WORKFLOWS / "parallel_profile.json"  # multi-step, python tools, no LLM
TEXT = "Containers bundle a program with what it needs. Images are built in layers and shipped."


def build(dw, workflow, *extra):
    proc = dw("build", str(workflow), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def both_images(dw):
    """The corpus summarizer and the multi-step profile workflow, for both platforms, under
    tags of their own: other tests build the same workflows under the default tags."""
    return {
        "summarizer": build(dw, SUMMARIZER, "--tag", "test-images-summarizer:both"),
        "profile": build(dw, PROFILE, "--tag", "test-images-profile:both"),
    }


def test_default_build_is_one_index_with_both_platforms(both_images):
    for tag in both_images.values():
        assert image_platforms(tag) == {"linux/amd64", "linux/arm64"}


def test_images_are_labelled_with_what_is_inside(both_images, dw):
    found = labels(both_images["summarizer"])
    assert found["workflow.id"] == "simple_summarizer"
    assert found["workflow.version"] == "1.0.0"
    assert found["workflow.models"] == "llama3"
    assert found["workflow.tools"] == "summarizer_tool"
    assert found["workflow.bundle-digest"].startswith("sha256:")
    assert found["docker-workflow.managed"] == "true"


def test_amd64_image_runs_against_the_real_model(both_images, dw, llm_server):
    proc = dw(
        "run",
        str(SUMMARIZER),
        json.dumps({"text": TEXT, "max_length": 15}),
        "--network",
        "host",
        "--endpoint",
        f"http://host.docker.internal:{llm_server.port}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)["summary"]
    assert isinstance(summary, str) and len(summary.split()) >= 2
    assert "[workflow] step summarize: done" in proc.stderr  # progress streamed from the container


def test_arm64_image_runs_under_qemu_with_the_same_result(both_images):
    inputs = json.dumps({"data": "Alpha  beta\nGamma"})
    results = {}
    for platform in ("linux/amd64", "linux/arm64"):
        described = docker_run(both_images["profile"], "--describe", platform=platform)
        assert described.returncode == 0, described.stderr
        results[platform] = docker_run(both_images["profile"], stdin=inputs, platform=platform)
        assert results[platform].returncode == 0, results[platform].stderr
        machine = json.loads(described.stdout)["machine"]
        assert machine == ("aarch64" if platform == "linux/arm64" else "x86_64")
    assert json.loads(results["linux/amd64"].stdout) == json.loads(results["linux/arm64"].stdout)
    assert json.loads(results["linux/amd64"].stdout)["result"]["count"] == 3


def test_hardened_container(both_images):
    hardened = (
        "--read-only",
        "--user",
        "65532",
        "--memory=128m",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    )
    proc = docker_run(both_images["profile"], options=hardened, stdin='{"data": "x y"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["combined"]["result_a"]["words"] == 2


def test_image_errors_use_the_runner_exit_codes(both_images):
    proc = docker_run(both_images["profile"], stdin='{"nope": 1}', options=("--network", "none"))
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["type"] == "bad_input"
    # The default endpoint (host.docker.internal) with no network: unreachable, exit 3.
    proc = docker_run(
        both_images["summarizer"],
        stdin='{"text": "x"}',
        options=("--network", "none"),
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["error"]["type"] == "llm_unreachable"


def test_run_passes_a_1mb_input_with_quotes_and_newlines_intact(both_images, dw, tmp_path):
    text = 'He said "stop" \\ it\'s {fine}\nnew line\ttab é 漢字 🎉\n' * 20000
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"data": text}, ensure_ascii=False), encoding="utf-8")
    assert path.stat().st_size > 1_000_000
    proc = dw("run", str(PROFILE), "-f", str(path), "--network", "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    combined = json.loads(proc.stdout)["result"]["combined"]
    assert combined["result_a"]["length"] == len(text)
    assert combined["result_a"]["lines"] == text.count("\n")


def test_no_tls_and_no_unused_stdlib_in_the_binary(both_images, shared_cache):
    files = image_files(both_images["summarizer"], "linux/amd64")
    names = " ".join(files)
    for absent in ("libcrypto", "libssl", "_ssl", "_hashlib", "_lzma", "_bz2", "_decimal"):
        assert absent not in names
    # The LLM-only image has no unicodedata at all: the shared program drops the built-in and
    # its empty layer brings none; it still runs against the real model and serves (the
    # tests above and tests/docker/test_serve.py's streaming one).
    assert "unicodedata" not in names
    assert "app/workflow" in files and "app/bundle.json" in files
    assert any(name.endswith("libc.so.6") for name in files)
    compiled = [f for f in compiled_dirs(shared_cache) if (f / ".meta" / REPORT).exists()]
    assert compiled  # the Nuitka compiles left their reports
    for folder in compiled:
        text = (folder / ".meta" / REPORT).read_text()
        assert '<module name="ssl"' not in text and '<module name="hashlib"' not in text
        zipped = zip_manifest(folder)
        if zipped["modules"]:  # the shared program: the engine's closure is in its stdlib.zip
            assert not {"ssl", "_ssl", "hashlib", "_hashlib"} & {
                *zipped["modules"],
                *zipped["extensions"],
            }
            assert "http.client" in zipped["modules"]  # which imports ssl where it can
        else:
            assert '<module_usage name="ssl" finding="excluded"' in text


def test_same_inputs_give_the_same_image_digest(both_images, dw):
    first = build(dw, PROFILE, "--platform", BOTH, "--tag", "repro-check:one")
    subprocess.run(["docker", "rmi", "-f", first], capture_output=True, check=True)
    second = build(dw, PROFILE, "--platform", BOTH, "--tag", "repro-check:two")
    assert image_id(second) == image_id(both_images["profile"])
    subprocess.run(["docker", "rmi", "-f", second], capture_output=True, check=False)


def test_a_real_recompile_gives_the_same_image_digest(both_images, dw, tmp_path):
    # Not a cache hit: an empty build cache, and BuildKit made to run the compile again on
    # fresh cache mounts. Only amd64 (the arm64 compile is the same script; bench/images.py
    # checks both platforms' compiled bytes).
    cached = build(dw, PROFILE, "--platform", "linux/amd64", "--tag", "repro-check:cached")
    fresh_env = {"DOCKER_WORKFLOW_CACHE": str(tmp_path / "cache"), "DOCKER_WORKFLOW_NO_CACHE": "1"}
    proc = dw(
        "build",
        str(PROFILE),
        "--platform",
        "linux/amd64",
        "--tag",
        "repro-check:fresh",
        env=fresh_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compile:" in proc.stderr and "-- compile:" not in proc.stderr  # it did compile
    assert image_id("repro-check:fresh") == image_id(cached)
    for tag in (cached, "repro-check:fresh"):
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_oci_tarball_output(both_images, dw, tmp_path):
    target = tmp_path / "profile.oci.tar"
    build(dw, PROFILE, "--oci", str(target))
    assert oci_platforms(target.read_bytes()) == {"linux/amd64", "linux/arm64"}


def test_compiler_none_runs_plain_cpython(dw):
    tag = build(dw, PROFILE, "--compiler", "none", "--platform", "linux/amd64", "-t", "p-none:1")
    proc = docker_run(tag, stdin='{"data": "a b c"}', options=("--read-only", "--user", "65532"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["combined"]["result_b"]["words"] == 3
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_alpine_runtime_refuses_a_glibc_program(both_images, dw):
    proc = dw("build", str(PROFILE), "--runtime", "alpine", "--platform", "linux/amd64")
    assert proc.returncode == 1
    assert "--runtime alpine needs a musl (Alpine) builder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_docker_missing_engine_down_and_bad_builder_are_clear(dw, tmp_path):
    proc = dw("build", str(PROFILE), env={"PATH": str(tmp_path)})
    assert proc.returncode == 1 and "docker is not installed" in proc.stderr
    proc = dw("build", str(PROFILE), env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert proc.returncode == 1 and "the Docker engine is not reachable" in proc.stderr
    # A builder reference on a loopback registry that does not exist: fails fast, offline.
    proc = build_amd64_with_builder(dw, "127.0.0.1:9/missing/builder:1")
    assert proc.returncode == 1
    assert "compiling the engine with nuitka for linux/amd64 failed" in proc.stderr
    assert "docker-workflow bases" in proc.stderr
    assert "Traceback" not in proc.stderr


def build_amd64_with_builder(dw, builder):
    return dw("build", str(PROFILE), "--platform", "linux/amd64", "--builder-image", builder)


def test_failed_compile_shows_the_relevant_log_lines(both_images, dw, tmp_path):
    # A builder without a shell or Python: the toolchain step fails inside BuildKit.
    proc = build_amd64_with_builder(dw, both_images["profile"])
    assert proc.returncode == 1
    assert "compiling the engine with nuitka for linux/amd64 failed:" in proc.stderr
    # BuildKit's own failure line, kept from the build log: the step that failed and why.
    assert "/bin/sh: no such file or directory" in proc.stderr or "exec: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_workflow_fails_before_docker(dw, tmp_path):
    bad = write_json(tmp_path / "bad.json", {"workflow_id": "x", "steps": []})
    proc = dw("build", str(bad))
    assert proc.returncode == 2
    assert "$.steps: [] should be non-empty" in proc.stderr


@pytest.mark.parametrize("compiler", ["onefile", "pyinstaller"])
def test_other_compilers_build_working_images(dw, compiler):
    tag = build(
        dw, PROFILE, "--compiler", compiler, "--platform", "linux/amd64", "-t", f"p-{compiler}:1"
    )
    proc = docker_run(tag, stdin='{"data": "one two"}', options=("--user", "65532"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["combined"]["result_c"]["words"] == 2
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_run_with_build_prints_only_the_result_on_stdout(dw):
    proc = dw(
        "run", str(PROFILE), '{"data": "x"}', "--build", "-t", "run-build:1", "--network", "none"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["result"]["count"] == 3  # nothing but the JSON
    assert "image:parallel_profile" in proc.stderr  # the build's step lines go to stderr
    subprocess.run(["docker", "rmi", "-f", "run-build:1"], capture_output=True, check=False)
