"""The builder's Python on the host: its standard library, extension modules and their libraries.

The module layer (``rules/stages/modules_layer.py``) is assembled on the host, in Python, from
files of the builder. They are copied out once per (builder image, platform) by one container
running ``rules/docker/build/builder_python.py`` (for a foreign platform under QEMU, once) into
``cache/builder-python/<image id>/<arch>/``: ``root/`` (the standard library with Debian's
bytecode, ``lib-dynload/``, the libraries its extension modules load, the CA bundle) and
``facts.json`` (built-in modules, each extension's libraries). Every later layer reads files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rules.docker.dockerfiles import docker_file
from rules.errors import UserError
from rules.fsutil import locked, replace_tree, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of

SCRIPTS = ("builder_python.py", "elf_closure.py")
BYTECODE_TAG = "cpython-311"  # rules/stages/lock.py BUILDER_PYTHON


@dataclass(frozen=True)
class Stdlib:
    """What one builder's Python has, by module name."""

    root: Path  # the copied file system (paths as in the builder)
    sources: dict[str, Path]  # module -> its .py (a package: its __init__.py)
    packages: frozenset[str]
    extensions: dict[str, dict]  # module -> {"file", "libraries", "missing"}
    builtin: frozenset[str]
    preloaded: frozenset[str]  # frozen modules every interpreter has (importlib's bootstrap)
    dynload: Path
    ca_bundle: str | None
    system_libraries: dict[str, list[str]]  # soname -> its path and closure, for wheels

    def bytecode(self, module: str) -> Path | None:
        """Debian's bytecode of a module (``__pycache__/<name>.cpython-311.pyc``)."""
        source = self.sources[module]
        pyc = source.parent / "__pycache__" / f"{source.stem}.{BYTECODE_TAG}.pyc"
        return pyc if pyc.is_file() else None

    def submodules(self, package: str) -> list[str]:
        prefix = package + "."
        return sorted(name for name in self.sources if name.startswith(prefix))


def _image_id(reference: str) -> str:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    found = result.stdout.strip()
    if result.returncode != 0 or not found:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", reference)  # not here yet: docker run pulls it
    return found.split(":")[-1][:16]


def builder_python_path(builder_image: str, platform: str) -> Path:
    """``cache/builder-python/<image id>-<script>/<arch>``: a new folder when the builder or the
    extraction script changes."""
    script = hashlib.sha256(b"".join(docker_file(name) for name in SCRIPTS)).hexdigest()[:8]
    return (
        cache_dir() / "builder-python" / f"{_image_id(builder_image)}-{script}" / arch_of(platform)
    )


def builder_python_dir(builder_image: str, platform: str) -> Path:
    """The extracted builder Python for this builder and platform (made once)."""
    target = builder_python_path(builder_image, platform)
    if (target / "facts.json").is_file():
        return target
    with locked(target.parent / f".{arch_of(platform)}.lock"):
        if not (target / "facts.json").is_file():
            _extract(builder_image, platform, target)
    return target


def _extract(builder_image: str, platform: str, target: Path) -> None:
    output = staging_dir(target)
    scripts = staging_dir(target.with_name(target.name + "-scripts"))
    try:
        for name in SCRIPTS:
            (scripts / name).write_bytes(docker_file(name))
        result = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--platform",
                platform,
                "--network",
                "none",
                "--user",
                f"{os.getuid()}:{os.getgid()}",
                "-v",
                f"{scripts}:/scripts:ro",
                "-v",
                f"{output}:/out",
                "--entrypoint",
                "python3",
                builder_image,
                "/scripts/builder_python.py",
                "/out",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"reading the Python of builder image {builder_image} for {platform} failed: {last}"
            )
        replace_tree(output, target)
    finally:
        shutil.rmtree(output, ignore_errors=True)
        shutil.rmtree(scripts, ignore_errors=True)


@cache
def load_stdlib(folder: Path) -> Stdlib:
    """The index of one extracted builder Python (once per process)."""
    facts = json.loads((folder / "facts.json").read_text())
    root = folder / "root"
    stdlib = root / facts["stdlib"].lstrip("/")
    sources: dict[str, Path] = {}
    packages: set[str] = set()
    for current, dirs, files in os.walk(stdlib):
        here = Path(current)
        relative = here.relative_to(stdlib)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and d.isidentifier())
        if relative.parts and not (here / "__init__.py").is_file():
            dirs[:] = []  # not a package: nothing below is importable by a dotted name
            continue
        prefix = ".".join(relative.parts)
        if prefix:
            sources[prefix] = here / "__init__.py"
            packages.add(prefix)
        for name in files:
            stem = name[:-3]
            if name.endswith(".py") and stem.isidentifier() and stem != "__init__":
                sources[f"{prefix}.{stem}" if prefix else stem] = here / name
    return Stdlib(
        root=root,
        sources=sources,
        packages=frozenset(packages),
        extensions=facts["extensions"],
        builtin=frozenset(facts["builtin"]),
        preloaded=frozenset(facts["preloaded"]),
        dynload=stdlib / "lib-dynload",
        ca_bundle=facts.get("ca_bundle"),
        system_libraries=facts.get("system_libraries", {}),
    )
