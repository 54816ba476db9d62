"""Helpers to look inside images and OCI tarballs: which platforms, which files, which labels."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path


def _index_platforms(read_blob, index: dict) -> set[str]:
    found: set[str] = set()
    for entry in index.get("manifests", []):
        media = entry.get("mediaType", "")
        platform = entry.get("platform")
        if "index" in media or "manifest.list" in media:
            found |= _index_platforms(read_blob, json.loads(read_blob(entry["digest"])))
        elif platform and platform.get("os") != "unknown":
            found.add(f"{platform['os']}/{platform['architecture']}")
    return found


def oci_platforms(tar_bytes: bytes) -> set[str]:
    """Platforms in an OCI/docker-save tarball, following nested indexes."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:

        def read_blob(digest: str) -> bytes:
            algorithm, value = digest.split(":")
            return archive.extractfile(f"blobs/{algorithm}/{value}").read()

        return _index_platforms(read_blob, json.loads(archive.extractfile("index.json").read()))


def _platform_manifest(read_blob, index: dict, platform: str) -> dict | None:
    for entry in index.get("manifests", []):
        media = entry.get("mediaType", "")
        found = entry.get("platform") or {}
        if "index" in media or "manifest.list" in media:
            manifest = _platform_manifest(
                read_blob, json.loads(read_blob(entry["digest"])), platform
            )
            if manifest is not None:
                return manifest
        elif f"{found.get('os')}/{found.get('architecture')}" == platform:
            return json.loads(read_blob(entry["digest"]))
    return None


def platform_layers(tag: str, platform: str) -> list[str]:
    """The layer digests of the image's ``platform`` variant (its manifest, from docker save)."""
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:

        def read_blob(digest: str) -> bytes:
            algorithm, value = digest.split(":")
            return archive.extractfile(f"blobs/{algorithm}/{value}").read()

        index = json.loads(archive.extractfile("index.json").read())
        manifest = _platform_manifest(read_blob, index, platform)
    assert manifest is not None, f"{tag} has no {platform} variant"
    return [layer["digest"] for layer in manifest["layers"]]


def image_platforms(tag: str) -> set[str]:
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
    return oci_platforms(saved)


def _tar_from_container(tag: str, platform: str, command: list[str]) -> tarfile.TarFile:
    """A tar stream read from a created (never started) container of ``tag``: ``command`` is
    ``docker`` arguments with ``{}`` for the container's id (``export``, ``cp``)."""
    created = subprocess.run(
        ["docker", "create", "--platform", platform, tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        args = [arg.replace("{}", created) for arg in command]
        out = subprocess.run(["docker", *args], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", created], capture_output=True, check=False)
    return tarfile.open(fileobj=io.BytesIO(out))


def image_files(tag: str, platform: str) -> dict[str, int]:
    """Path -> size of every file in the image's file system for ``platform``."""
    with _tar_from_container(tag, platform, ["export", "{}"]) as archive:
        return {m.name: m.size for m in archive.getmembers() if m.isfile()}


def image_links(tag: str, platform: str) -> dict[str, str]:
    """Path -> target of every symbolic link in the image's file system for ``platform``."""
    with _tar_from_container(tag, platform, ["export", "{}"]) as archive:
        return {m.name: m.linkname for m in archive.getmembers() if m.issym()}


def image_file(tag: str, platform: str, path: str) -> bytes:
    """The bytes of the file at ``path`` in the image's file system for ``platform``."""
    with _tar_from_container(tag, platform, ["cp", f"{{}}:{path}", "-"]) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        assert member is not None
        return member.read()


def zip_members(tag: str, platform: str, path: str) -> set[str]:
    """The member names of the zip at ``path`` in the image's file system for ``platform``."""
    with zipfile.ZipFile(io.BytesIO(image_file(tag, platform, path))) as zipped:
        return set(zipped.namelist())


def image_id(tag: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def labels(tag: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def docker_run(tag: str, *program_args: str, options=(), stdin: str = "", platform=None):
    """``docker run --rm -i [--platform P] OPTIONS TAG ARGS`` with ``stdin``."""
    command = ["docker", "run", "--rm", "-i"]
    if platform:
        command += ["--platform", platform]
    return subprocess.run(
        [*command, *options, tag, *program_args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
    )


def compiled_dirs(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "compiled").glob("*/*") if (p / "app").is_dir())
