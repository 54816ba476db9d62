"""The builder's Python copied out on the host (``docker cp``, ``DT_NEEDED`` read on the host)
names, for every extension module, the libraries ``ldd`` names in the builder itself.

The reference is ``ldd`` run in the builder of each platform (arm64 under QEMU: the way the
copy was made before, and what it must still give).
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess

import pytest

from rules.stages.builder_python import builder_python_dir, load_stdlib
from rules.stages.program_builtins import DROPPED

LDD_PATH = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)")
NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found")


def ldd_in_builder(
    builder_image: str, files: list[str], platform: str = "linux/amd64", mounts=()
) -> dict[str, tuple[list[str], list[str]]]:
    """file -> (library paths, sonames not found), from ``ldd`` in the builder (``mounts``:
    ``-v`` arguments, for files of the copy that the builder does not have)."""
    script = 'for f in "$@"; do echo "== $f"; ldd "$f" || true; done'
    volumes = [arg for mount in mounts for arg in ("-v", mount)]
    output = subprocess.run(
        [
            *("docker", "run", "--rm", "--platform", platform, "--network", "none", *volumes),
            *("--entrypoint", "sh", builder_image, "-c", script, "ldd", *files),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, tuple[list[str], list[str]]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("== "):
            current = line[3:]
            found[current] = ([], [])
        elif match := LDD_PATH.match(line):
            found[current][0].append(match.group(1))
        elif match := NOT_FOUND.match(line):
            found[current][1].append(match.group(1))
    return {name: (sorted(set(paths)), sorted(missing)) for name, (paths, missing) in found.items()}


@pytest.fixture(scope="module")
def copied(builder_image, tmp_path_factory):
    """Both platforms' copies, made by this code in a fresh cache folder."""
    from rules.paths import cache_root

    with cache_root(tmp_path_factory.mktemp("builder-python")):
        return {
            platform: builder_python_dir(builder_image, platform)
            for platform in ("linux/amd64", "linux/arm64")
        }


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_the_libraries_found_on_the_host_are_those_ldd_names(builder_image, copied, platform):
    stdlib = load_stdlib(copied[platform])
    facts = json.loads((copied[platform] / "facts.json").read_text())
    dynload = posixpath.join(facts["stdlib"], "lib-dynload")
    # Debian's built-ins linked as extension modules from its static libpython are only in
    # the copy: ldd reads them mounted into the builder.
    built = set(facts["builtin_extensions"]["built"])
    assert facts["builtin_extensions"]["failed"] == {}
    assert DROPPED - {"xxsubtype"} <= built  # CPython's example module is no Setup.local one
    files = {
        name: posixpath.join("/built" if name in built else dynload, e["file"])
        for name, e in stdlib.extensions.items()
    }
    mounts = [f"{stdlib.dynload}:/built:ro"]
    reference = ldd_in_builder(builder_image, sorted(files.values()), platform, mounts)
    assert len(files) > 60  # _ssl, _sqlite3, _decimal, ... and the 30 built-ins
    assert any(p.endswith("/libexpat.so.1") for p in stdlib.extensions["pyexpat"]["libraries"])
    for name, path in files.items():
        entry = stdlib.extensions[name]
        assert (entry["libraries"], entry["missing"]) == reference[path], name
        for library in entry["libraries"]:
            assert (stdlib.root / library.lstrip("/")).is_file(), library
    loader = {
        "linux/amd64": "/lib64/ld-linux-x86-64.so.2",
        "linux/arm64": "/lib/ld-linux-aarch64.so.1",
    }
    assert loader[platform] in stdlib.extensions["_ssl"]["libraries"]


def test_the_wheel_system_libraries_come_with_their_closure(builder_image, copied):
    stdlib = load_stdlib(copied["linux/amd64"])
    libstdcxx = "/lib/x86_64-linux-gnu/libstdc++.so.6"
    closure = ldd_in_builder(builder_image, [libstdcxx])[libstdcxx][0]
    assert stdlib.system_libraries["libstdc++.so.6"] == sorted({libstdcxx, *closure})


def test_the_arm64_copy_has_arm64_files(copied):
    arm64 = load_stdlib(copied["linux/arm64"])
    assert arm64.builtin == load_stdlib(copied["linux/amd64"]).builtin
    for entry in arm64.extensions.values():
        files = [arm64.dynload / entry["file"]]
        files += [arm64.root / library.lstrip("/") for library in entry["libraries"]]
        for path in files:
            head = path.read_bytes()[:20]
            assert head[:4] == b"\x7fELF" and head[18] == 183, path  # EM_AARCH64


def test_a_module_without_bytecode_gets_it_from_the_builders_python(builder_image, tmp_path):
    # The official python images delete __pycache__: the builder's own Python (this machine's
    # platform) compiles what has none, without timestamps, naming the builder's path.
    import marshal

    from rules.stages.builder_python import _compile_missing_bytecode

    source = tmp_path / "usr/lib/python3.11/shout.py"
    source.parent.mkdir(parents=True)
    source.write_text("def shout(text):\n    return text.upper()\n")
    _compile_missing_bytecode(tmp_path, "/usr/lib/python3.11", "cpython-311", builder_image)
    data = (source.parent / "__pycache__" / "shout.cpython-311.pyc").read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b01  # unchecked hash
    assert marshal.loads(data[16:]).co_filename == "/usr/lib/python3.11/shout.py"
