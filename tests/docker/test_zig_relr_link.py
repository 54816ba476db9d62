"""The zig wrapper of compile.sh links arm64 programs with packed relative relocations, on a
cold Zig cache (where ``zig cc -v`` also prints the links of glibc's stub libraries) and a warm
one alike: the wrapper as compile.sh writes it, run in the builder with the real Zig."""

from __future__ import annotations

import re
import subprocess

import pytest
from helpers import ROOT

from rules.paths import cache_root
from rules.stages.toolchain import zig_dir

COMPILE_SH = ROOT / "rules" / "docker" / "build" / "compile.sh"


def wrapper_script() -> str:
    """compile.sh's lines that write the wrapper (its heredoc), writing /tmp/zigw instead."""
    text = COMPILE_SH.read_text()
    found = re.search(r"cat > /build/zigbin/zig <<ZIG\n(.*?\n)ZIG\n", text, re.S)
    assert found, "compile.sh no longer writes the zig wrapper with a heredoc"
    return f"cat > /tmp/zigw <<ZIG\n{found.group(1)}ZIG\nchmod 755 /tmp/zigw\n"


@pytest.fixture(scope="module")
def zig(shared_cache):
    with cache_root(shared_cache):
        return zig_dir()


def test_the_program_link_is_packed_on_a_cold_and_a_warm_zig_cache(builder_image, zig):
    script = (
        "set -e\narch=aarch64 glibc=2.36 triple=aarch64-linux-gnu relr_link=yes\n"
        + wrapper_script()
        + "export ZIG_GLOBAL_CACHE_DIR=/tmp/zc ZIG_LOCAL_CACHE_DIR=/tmp/zc\ncd /tmp\n"
        + "printf 'int x = 1; int *p = &x;\\nint main(void) { return *p - 1; }\\n' > a.c\n"
        + "/tmp/zigw cc -c a.c -o a.o -fPIE\n"
        + "/tmp/zigw cc a.o -o cold -pie 2>/dev/null\n"  # the stub libraries are linked too
        + "/tmp/zigw cc a.o -o warm -pie 2>/dev/null\n"
        + "for p in cold warm; do readelf -d $p | grep -c '(RELR)'; done\n"
    )
    done = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/amd64", "-v", f"{zig}:/opt/zig:ro",
         builder_image, "sh", "-c", script],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1"], done.stdout
