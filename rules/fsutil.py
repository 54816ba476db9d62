"""Atomic file output: a target is either absent, the old version, or the complete new one.

Every pipeline step writes through these helpers, so an interrupted build (Ctrl-C, kill, full
disk) never leaves a half-written file that a later run could take for a finished one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temporary file and rename; skip if unchanged.

    Returns whether the file changed. Leaving an identical file alone keeps its timestamp, which
    keeps tools that do look at timestamps (Docker's build context, editors) quiet.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def replace_tree(staging: Path, final: Path) -> None:
    """Move a completely written directory ``staging`` to ``final`` (replacing it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old.{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def staging_dir(final: Path) -> Path:
    """A fresh empty directory beside ``final`` to build it in."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed) for the ``with`` block.

    Two builds at the same time (two ``doit`` runs, or ``doit`` and the CLI) wait for each
    other where they would write the same output, instead of racing to rename over it.
    """
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks (wheels and toolchain archives are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


NAME_MAX = 255  # the longest file name (one path component) Linux file systems take


class BadPath(ValueError):
    """A path from a user's file that cannot name a file here (the message says why)."""


def resolve_name(folder: Path, name: str) -> Path:
    """``folder / name`` resolved (links followed), or :class:`BadPath` saying why not.

    Names come from workflow and tool files (``workflow_path``, ``script:``), and the system
    calls behind ``Path.resolve`` fail on a NUL byte (``ValueError``), a component longer than
    ``NAME_MAX`` (``OSError``) or a link loop (``RuntimeError``): each becomes one message.
    """
    if "\0" in name:
        raise BadPath("contains a NUL byte")
    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in name.split("/"))
    if longest > NAME_MAX:
        raise BadPath(f"has a name of {longest} bytes (at most {NAME_MAX})")
    try:
        return (folder / name).resolve()
    except RuntimeError:  # Python 3.11's report of a symbolic link loop
        raise BadPath("is a symbolic link loop") from None
    except OSError as error:
        raise BadPath(f"cannot be resolved: {os.strerror(error.errno or 0)}") from None


def reset_metadata(root: Path) -> None:
    """mtime 0 and 0755 folders everywhere below ``root``: the same image layer bytes wherever
    the folder is made (BuildKit's COPY keeps both)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(Path(folder) / name, 0o755)
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (0, 0), follow_symlinks=False)
    os.chmod(root, 0o755)
    os.utime(root, (0, 0))
