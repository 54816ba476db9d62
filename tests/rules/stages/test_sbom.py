"""The SBOM writer on a compile output laid out by hand: what the other compilers leave (no
Nuitka report), locked wheels, the schema, stable bytes. Real images and their SBOMs (Nuitka's
report, glibc, both platforms) are checked in tests/docker/test_registry.py."""

from __future__ import annotations

import json

import pytest

from rules.stages.image_request import ImageRequest
from rules.stages.lock import ENGINE_LOCK_FILE
from rules.stages.sbom import SBOM_PATH, platform_stages, sbom_json, validate_sbom, write_sboms

WHEEL_SHA = "cd" * 32


@pytest.fixture
def request_(tmp_path) -> ImageRequest:
    compiled = {}
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        folder = tmp_path / "compiled" / "key123" / arch
        (folder / ".meta").mkdir(parents=True)
        (folder / ".meta" / "libc").write_text("glibc\n")
        (folder / ".meta" / "python").write_text("python3.11\n")  # what --compiler none leaves
        (folder / "app").mkdir()
        (folder / "app" / "workflow").write_bytes(f"program for {arch}".encode())
        (folder / "lib").mkdir()
        (folder / "lib" / "libz.so.1").write_bytes(b"zlib")
        compiled[platform] = folder
    engine = tmp_path / "engine"
    engine.mkdir()
    wheel = {"name": "Tabulate", "version": "0.9.0", "file": "tabulate-0.9.0-py3-none-any.whl"}
    lock = {
        "platforms": {
            p: {"wheels": [{**wheel, "sha256": WHEEL_SHA}]} for p in ("linux/amd64", "linux/arm64")
        }
    }
    (engine / ENGINE_LOCK_FILE).write_text(json.dumps(lock))
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    return ImageRequest(
        workflow_id="tabler",
        version="2.0",
        bundle_path=bundle,
        bundle_digest="sha256:" + "ab" * 32,
        engine_digest="ef" * 32,
        models=[],
        tools=["table_tool"],
        compiled=compiled,
        tag="workflow-tabler:latest",
        engine_dir=engine,
    )


def test_the_sbom_lists_wheels_python_and_libraries_and_follows_the_schema(request_):
    data = sbom_json(request_, "linux/arm64")
    validate_sbom(data)
    bom = json.loads(data)
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    wheel = by_ref["pypi:Tabulate"]
    assert wheel["version"] == "0.9.0" and wheel["purl"] == "pkg:pypi/tabulate@0.9.0"
    assert wheel["hashes"] == [{"alg": "SHA-256", "content": WHEEL_SHA}]
    assert by_ref["cpython"]["version"] == "3.11"
    assert by_ref["file:/lib/libz.so.1"]["hashes"][0]["alg"] == "SHA-256"
    assert "version" not in by_ref["libc"]  # no libc.so.6 here to read it from
    assert bom["metadata"]["timestamp"].startswith("1970-01-01T00:00:00")
    assert {d["ref"] for d in bom["dependencies"]} >= {"workflow", "pypi:Tabulate"}


def test_same_inputs_same_bytes_and_each_platform_its_own(request_, tmp_path):
    amd64, arm64 = sbom_json(request_, "linux/amd64"), sbom_json(request_, "linux/arm64")
    assert sbom_json(request_, "linux/amd64") == amd64
    assert amd64 != arm64  # another program, another serial number
    assert json.loads(amd64)["serialNumber"] != json.loads(arm64)["serialNumber"]
    context = tmp_path / "context"
    digests = write_sboms(request_, context)
    assert (context / "sbom-arm64" / SBOM_PATH).read_bytes() == arm64
    stages = platform_stages("scratch", digests)
    assert stages.splitlines() == [
        "FROM scratch AS base-amd64",
        f'LABEL docker-workflow.sbom-digest="{digests["linux/amd64"]}"',
        "FROM scratch AS base-arm64",
        f'LABEL docker-workflow.sbom-digest="{digests["linux/arm64"]}"',
    ]
