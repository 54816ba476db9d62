"""Nuitka installed on the host for the compile stage: one folder for both platforms, bytecode
for every module without timestamps, and the builder's own python3 runs it from there."""

from __future__ import annotations

import subprocess

import pytest

from rules.paths import cache_root
from rules.stages.toolchain import NUITKA
from rules.stages.toolchain_site import SITE, site_dir


@pytest.fixture(scope="module")
def site(builder_image, shared_cache):
    """The shared test cache has the Nuitka download (and this folder, after the first run)."""
    with cache_root(shared_cache):
        amd64 = site_dir("nuitka", "amd64", builder_image)
        arm64 = site_dir("nuitka", "arm64", builder_image)
    return amd64, arm64


def test_one_folder_serves_both_platforms(site):
    amd64, arm64 = site
    assert amd64 == arm64


def test_every_module_has_unchecked_hash_bytecode(site):
    folder, _ = site
    sources = sorted((folder / "nuitka").rglob("*.py"))
    assert len(sources) > 300
    missing = []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        if not pyc.is_file():
            missing.append(source)
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, pyc  # hash-based, never checked against the source
    # Only what is not Python 3 (inline copies for old Pythons) may lack bytecode.
    assert len(missing) < len(sources) // 20, missing[:5]


def test_the_builders_python_runs_it_read_only(site, builder_image):
    folder, _ = site
    proc = subprocess.run(
        [
            *("docker", "run", "--rm", "--platform", "linux/amd64", "--network", "none"),
            *("-v", f"{folder}:{SITE}:ro", "-e", f"PYTHONPATH={SITE}"),
            *("--entrypoint", "python3", builder_image, "-m", "nuitka", "--version"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == NUITKA.split("==")[1]
