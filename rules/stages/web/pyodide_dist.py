"""Pyodide, pinned: the ``pyodide`` npm package fetched once on the host, checked, cached.

The page must load nothing from the internet, so the runtime is copied into the site. The
tarball comes from the npm registry at build time (``DOCKER_WORKFLOW_NPM_REGISTRY``, else the
public registry), is checked against the pinned Subresource-Integrity hash (sha512, what
``npm`` itself checks) and unpacked under ``cache/web/``; a cached copy is checked again before
use, so a changed file is never shipped.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from rules.errors import UserError
from rules.fsutil import atomic_write, file_sha256, locked, replace_tree, staging_dir
from rules.paths import cache_dir

VERSION = "314.0.8"  # Python 3.14.2, Emscripten 5.0.3
INTEGRITY = (
    "sha512-"
    "74Wq1kXOC+CCEzAfxuRAO701nAcCMLjf8NrwvWpu8S41dVMXwXmLQ05dYB+F4e46AdnGo0oq7YHSVUpHsoarLQ=="
)
PYTHON_VERSION = (3, 14)
# What the page needs of the package: the loader, the runtime, the standard library archive
# (replaced by a shaken one) and the lock file (replaced by an empty one).
RUNTIME_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm")
STDLIB_FILE = "python_stdlib.zip"
LOCK_FILE = "pyodide-lock.json"
PACKAGE_FILES = (*RUNTIME_FILES, STDLIB_FILE, LOCK_FILE)
MANIFEST = "files.json"  # each unpacked file's sha256, checked before every use
DEFAULT_REGISTRY = "https://registry.npmjs.org"


def tarball_url() -> str:
    registry = (os.environ.get("DOCKER_WORKFLOW_NPM_REGISTRY") or DEFAULT_REGISTRY).rstrip("/")
    return f"{registry}/pyodide/-/pyodide-{VERSION}.tgz"


def integrity_of(data: bytes) -> str:
    """The Subresource-Integrity string of ``data`` (``sha512-<base64>``, as npm writes it)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _tarball() -> bytes:
    path = cache_dir() / "web" / f"pyodide-{VERSION}.tgz"
    if path.is_file():
        data = path.read_bytes()
        if integrity_of(data) == INTEGRITY:
            return data
    url = tarball_url()
    try:
        with urllib.request.urlopen(url, timeout=120) as reply:
            data = reply.read()
    except (urllib.error.URLError, OSError) as error:
        raise UserError(f"cannot download Pyodide {VERSION} from {url}: {error}") from None
    if integrity_of(data) != INTEGRITY:
        raise UserError(
            f"{url}: the tarball's hash is not the pinned one ({INTEGRITY[:20]}...): refusing it"
        )
    atomic_write(path, data)
    return data


def _checked(folder: Path) -> bool:
    """Whether ``folder`` holds the files unpacked from the pinned tarball, byte for byte."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("integrity") != INTEGRITY:
        return False
    files = manifest.get("files") or {}
    return set(files) == set(PACKAGE_FILES) and all(
        (folder / name).is_file() and file_sha256(folder / name) == digest
        for name, digest in files.items()
    )


def pyodide_dir() -> Path:
    """The unpacked, checked package (``cache/web/pyodide-VERSION/``), fetched if needed."""
    final = cache_dir() / "web" / f"pyodide-{VERSION}"
    with locked(final.parent / f".pyodide-{VERSION}.lock"):
        if _checked(final):
            return final
        data = _tarball()
        staging = staging_dir(final)
        try:
            wanted = {f"package/{name}": name for name in PACKAGE_FILES}
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive.getmembers():
                    name = wanted.get(member.name)
                    source = archive.extractfile(member) if name and member.isfile() else None
                    if source is not None:
                        (staging / name).write_bytes(source.read())
            missing = sorted(n for n in PACKAGE_FILES if not (staging / n).is_file())
            if missing:
                raise UserError(f"the pyodide {VERSION} package lacks {', '.join(missing)}")
            files = {name: file_sha256(staging / name) for name in PACKAGE_FILES}
            manifest = {"integrity": INTEGRITY, "files": files}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            replace_tree(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return final
