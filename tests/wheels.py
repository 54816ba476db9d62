"""Tiny real wheels made on the spot, for pip to resolve from a local folder (no network)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    folder: Path,
    name: str,
    version: str = "1.0",
    tag: str = "py3-none-any",
    modules: dict[str, str] | None = None,
    requires: list[str] | None = None,
) -> Path:
    """A wheel of ``name`` with ``modules`` (path in the wheel -> source) and dependencies."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    modules = modules or {f"{name.replace('-', '_')}/__init__.py": "VALUE = 1\n"}
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires or [])
    tops = sorted({path.split("/")[0].removesuffix(".py") for path in modules})
    files = {
        **{path: source.encode() for path, source in modules.items()},
        f"{dist}/METADATA": metadata.encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
        f"{dist}/top_level.txt": ("\n".join(tops) + "\n").encode(),
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{dist}/RECORD,,"]
    path = folder / f"{name.replace('-', '_')}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def offline_index(folder: Path) -> dict[str, str]:
    """Environment for pip to resolve only from ``folder``."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), "PIP_CONFIG_FILE": "/dev/null"}
