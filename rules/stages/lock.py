"""Pipeline step: resolve a workflow's pip packages into a lock, once, for every target platform.

``pip download --only-binary=:all: --platform <manylinux tags> --python-version 3.11`` runs on
the host for each platform (containers here cannot reach an index, and a compile that downloads
is not reproducible anyway); the wheels land in ``cache/wheels/<arch>/`` and the lock records
each one's name, version, file and sha256, the top-level modules it provides and the standard
library modules its code imports (so the stdlib tree-shaking keeps ``ssl`` when ``urllib3``
needs it). The compile stage installs exactly those files, offline, with ``--require-hashes``.

A lock is keyed by the requirement set, the platforms and the builder's Python: the same
requirements resolve once and are reused by every target and every run (``cache/locks/``).
pip's own settings apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``, pip.conf),
so a private index or an offline wheel folder works as it does for pip.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from rules.errors import InvalidInput, Problem, UserError
from rules.fsutil import atomic_write, file_sha256, locked, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages.prepared import EMPTY_LOCK

LOCK_FORMAT = 1
BUILDER_PYTHON = "3.11"  # the Python of every supported builder image (Debian bookworm, 3.11)
GLIBC_MINOR = 36  # bookworm's glibc: wheels for manylinux up to 2.36 run on the builder
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
MISSING_RE = re.compile(r"No matching distribution found for (\S+)")
ENGINE_LOCK_FILE = "requirements.lock.json"  # the lock's name inside a rendered engine


def wheel_platform_tags(arch: str) -> list[str]:
    """The manylinux tags a builder of ``arch`` runs, newest first (pip does not expand them)."""
    machine = MACHINES[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 16, -1)]
    tags.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def wheels_dir(arch: str) -> Path:
    return cache_dir() / "wheels" / arch


def lock_key(requirements: list[str], platforms: list[str]) -> str:
    facts = {
        "format": LOCK_FORMAT,
        "python": BUILDER_PYTHON,
        "requirements": sorted(requirements),
        "platforms": sorted(platforms),
        "index": [os.environ.get(k, "") for k in ("PIP_INDEX_URL", "PIP_FIND_LINKS")],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]


def inspect_wheel(path: Path) -> dict[str, Any]:
    """Top-level modules a wheel provides, and the standard library modules its code imports."""
    top: set[str] = set()
    with_data: set[str] = set()
    stdlib_used: set[str] = set()
    stdlib = set(sys.stdlib_module_names)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        listed = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        if listed:
            text = archive.read(listed[0]).decode("utf-8", "replace")
            top = {line.strip().split("/")[0] for line in text.splitlines() if line.strip()}
        for name in names:
            first = name.split("/")[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if not listed:
                module = first.split(".")[0] if "/" not in name else first
                if module.isidentifier():
                    top.add(module)
            if "/" in name and not name.endswith((".py", ".pyi", ".so", "/", ".typed")):
                with_data.add(first)
            if name.endswith(".py"):
                try:
                    tree = ast.parse(archive.read(name))
                except (SyntaxError, ValueError):
                    continue
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        found = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                        found = [node.module]
                    else:
                        continue
                    stdlib_used.update(n.split(".")[0] for n in found if n.split(".")[0] in stdlib)
    return {
        "top_level": sorted(top),
        "data_packages": sorted(with_data & top),
        "stdlib_imports": sorted(stdlib_used),
    }


def _pip_download(requirements: list[str], arch: str, dest: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    for tag in wheel_platform_tags(arch):
        command += ["--platform", tag]
    command += ["--python-version", BUILDER_PYTHON, "--implementation", "cp"]
    command += ["--abi", "cp" + BUILDER_PYTHON.replace(".", ""), "--dest", str(dest)]
    options = [r for r in requirements if r.startswith("--")]
    command += [*options, "--", *(r for r in requirements if not r.startswith("--"))]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _package_name(requirement: str) -> str:
    """The distribution name in a requirement as pip reports it: ``onlyamd==1.0`` -> ``onlyamd``."""
    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return requirement


def requirement_origin(needs: dict[str, Any], name: str, fallback_file: str) -> tuple[str, str]:
    """The file and JSON path that asked for package ``name`` (a requirement is fine too)."""
    origin = (needs.get("origins") or {}).get(canonicalize_name(_package_name(name)))
    return (origin[0], origin[1]) if origin else (fallback_file, "$")


def _resolve_platform(requirements: list[str], platform: str) -> list[dict[str, Any]] | str:
    """The wheels for ``platform``, or the name pip could not find."""
    arch = arch_of(platform)
    folder = wheels_dir(arch)
    folder.mkdir(parents=True, exist_ok=True)
    partial = staging_dir(folder / ".download")
    try:
        result = _pip_download(requirements, arch, partial)
        if result.returncode != 0:
            missing = MISSING_RE.search(result.stderr)
            if missing:
                return missing.group(1)
            lines = [line for line in result.stderr.splitlines() if "WARNING" not in line]
            raise UserError(
                f"resolving the workflow's packages for {platform} failed (pip exit"
                f" {result.returncode}):\n  " + "\n  ".join(lines[-8:])
            )
        wheels = []
        for downloaded in sorted(partial.iterdir()):
            if not downloaded.name.endswith(".whl"):
                continue
            name, version, _, _ = parse_wheel_filename(downloaded.name)
            target = folder / downloaded.name
            if not target.exists():
                os.replace(downloaded, target)
            wheels.append(
                {
                    "name": str(name),
                    "version": str(version),
                    "file": downloaded.name,
                    "sha256": file_sha256(target),
                    **inspect_wheel(target),
                }
            )
        return wheels
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def make_lock(needs: dict[str, Any], platforms: list[str], workflow_file: str) -> dict[str, Any]:
    """The lock for ``needs`` (the analysis' ``packages``) on ``platforms``; cached by content.

    Raises :class:`InvalidInput` (exit 2, one line each) for a requirement with no wheel on a
    platform and for an import that no locked wheel provides.
    """
    requirements = list(needs.get("requirements") or [])
    if not requirements:
        return EMPTY_LOCK
    key = lock_key(requirements, platforms)
    stored = cache_dir() / "locks" / f"{key}.json"
    with locked(cache_dir() / "locks" / f"{key}.lock"):
        if stored.exists():
            lock = json.loads(stored.read_text())
        else:
            lock = _resolve(requirements, platforms, needs, workflow_file)
            atomic_write(stored, json.dumps(lock, indent=2, sort_keys=True).encode())
    _check_imports(lock, needs, workflow_file)
    return lock


def _resolve(requirements, platforms, needs, workflow_file) -> dict[str, Any]:
    results = {p: _resolve_platform(requirements, p) for p in platforms}
    problems: list[Problem] = []
    for platform, result in results.items():
        if isinstance(result, list):
            continue
        file, where = requirement_origin(needs, result, workflow_file)
        others = [p for p, r in results.items() if isinstance(r, list)]
        if others:
            message = (
                f"package '{_package_name(result)}' has no wheel for {platform} (CPython"
                f" {BUILDER_PYTHON},"
                f" glibc 2.{GLIBC_MINOR}), though it has one for {', '.join(others)}: pick"
                " another version or build for the other platform only"
            )
        else:
            message = (
                f"requirement '{result}' matches no wheel for {platform} (CPython"
                f" {BUILDER_PYTHON}): check the name and the version on the package index"
            )
        problems.append(Problem(file, where, message))
    if problems:
        raise InvalidInput(problems)
    return {
        "format": LOCK_FORMAT,
        "python": BUILDER_PYTHON,
        "requirements": sorted(requirements),
        "platforms": {platform: {"wheels": wheels} for platform, wheels in results.items()},
    }


def _check_imports(lock: dict[str, Any], needs: dict[str, Any], workflow_file: str) -> None:
    imports = needs.get("imports") or {}
    problems = []
    for platform, entry in lock["platforms"].items():
        provided = {m for wheel in entry["wheels"] for m in wheel["top_level"]}
        for module in sorted(imports):
            if module in provided:
                continue
            file, where = imports[module][0] if imports[module] else (workflow_file, "$")
            problems.append(
                Problem(
                    file,
                    where,
                    f"imports '{module}', which none of the locked packages provides on"
                    f" {platform} ({', '.join(w['name'] for w in entry['wheels'])}): add the"
                    " package that provides it to the tool's 'requirements'",
                )
            )
        if problems:
            break
    if problems:
        raise InvalidInput(problems)


def lock_wheels(lock: dict[str, Any], platform: str) -> list[dict[str, Any]]:
    return list(((lock.get("platforms") or {}).get(platform) or {}).get("wheels") or [])


def requirements_txt(wheels: list[dict[str, Any]]) -> str:
    """``name==version --hash=sha256:...`` lines for ``pip install --require-hashes``."""
    return "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in wheels)


def package_facts(lock: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(packages of the locked wheels that carry data files, stdlib modules their code imports)."""
    data: set[str] = set()
    stdlib: set[str] = set()
    for entry in (lock.get("platforms") or {}).values():
        for wheel in entry["wheels"]:
            data.update(wheel["data_packages"])
            stdlib.update(wheel["stdlib_imports"])
    return sorted(data), sorted(stdlib)


def ensure_wheel(wheel: dict[str, Any], platform: str) -> Path:
    """The locked wheel's file in ``cache/wheels``, downloaded again (and checked against the
    lock's sha256) if the folder lost it."""
    arch = arch_of(platform)
    path = wheels_dir(arch) / wheel["file"]
    if not path.is_file():
        found = _resolve_platform([f"{wheel['name']}=={wheel['version']}", "--no-deps"], platform)
        if not isinstance(found, list) or not path.is_file():
            raise UserError(
                f"the locked wheel {wheel['file']} for {platform} cannot be downloaded again"
            )
    if file_sha256(path) != wheel["sha256"]:
        raise UserError(
            f"{path}: its sha256 is not the one in the lock: the file changed on the package"
            " index or on disk; delete it and the lock (cache/locks) to resolve again"
        )
    return path
