"""Pushed images: the ``NAME@sha256:...`` a push produced, recorded for later commands, and one
clear line when a Docker registry cannot take the push.

(``rules/files/registry.py`` is the *tool* registry; this module is about Docker registries.)

``build --push`` asks buildx for its metadata file and records the index digest it pushed under
``cache/pushed/``, with the labels that say what was built (bundle, engine, recipe). ``k8s``
manifests and Swarm services then name the image by that digest (as ``ko resolve`` does), so a
re-tag in the registry never changes what runs, and a Swarm node that never saw the image pulls
exactly that one. Credentials are never handled here: buildx and the engine read them from
``docker login``'s config (``$DOCKER_CONFIG/config.json``) themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rules.errors import UserError
from rules.fsutil import atomic_write
from rules.paths import cache_dir

# What must match between a local image and a pushed one for them to be the same build.
IDENTITY_LABELS = (
    "workflow.bundle-digest",
    "workflow.engine-digest",
    "workflow.runtime",
    "docker-workflow.image-recipe",
)


def repository(reference: str) -> str:
    """``host:5000/a/b:tag`` -> ``host:5000/a/b`` (no tag, no digest)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def registry_host(reference: str) -> str:
    """The registry a reference points at (Docker's rule: a first part with '.' or ':', or
    ``localhost``, is a host; anything else is on Docker Hub)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _record_file(tag: str) -> Path:
    return cache_dir() / "pushed" / (re.sub(r"[^A-Za-z0-9_.-]", "_", tag) + ".json")


def record_push(tag: str, metadata_file: Path, labels: dict[str, str]) -> str:
    """Record what buildx pushed for ``tag`` (from its ``--metadata-file``); return
    ``NAME@sha256:...``."""
    try:
        digest = json.loads(metadata_file.read_text())["containerimage.digest"]
    except (OSError, ValueError, KeyError):
        raise UserError(f"pushing {tag}: buildx reported no digest for the pushed image") from None
    reference = f"{repository(tag)}@{digest}"
    record = {"tag": tag, "reference": reference, "digest": digest, "labels": labels}
    atomic_write(_record_file(tag), json.dumps(record, indent=2, sort_keys=True).encode())
    return reference


def pushed_reference(tag: str, labels: dict[str, str] | None = None) -> str | None:
    """``NAME@sha256:...`` last pushed for ``tag`` (None when none was), and, when ``labels`` of
    a local image are given, only if that push was the same build."""
    if "@" in tag:
        return tag  # already pinned
    try:
        record = json.loads(_record_file(tag).read_text())
    except (OSError, ValueError):
        return None
    if labels is not None:
        pushed = record.get("labels") or {}
        if any(pushed.get(key) != labels.get(key) for key in IDENTITY_LABELS):
            return None
    return record.get("reference")


# (what the engine or buildx says, what to tell the user); first match wins.
_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), message)
    for pattern, message in (
        (
            r"no space left|insufficient storage|\b507\b|disk quota",
            "the registry {host} ran out of space while taking {name}",
        ),
        (
            r"401 unauthorized|unauthorized|authentication required|no basic auth",
            "the registry {host} refused the push of {name}: not logged in, or wrong"
            " credentials (docker login {host})",
        ),
        (
            r"403 forbidden|denied|insufficient_scope",
            "the registry {host} denied the push of {name}: the account may not write there",
        ),
        (
            r"x509|certificate",
            "the registry {host} has a TLS certificate the engine does not trust: put its CA"
            " in /etc/docker/certs.d/{host}/ca.crt",
        ),
        (
            r"server gave http response to https client",
            "the registry {host} speaks plain HTTP: list it in the engine's insecure-registries",
        ),
        (
            r"connection refused|no such host|i/o timeout|network is unreachable|"
            r"connection reset|dial tcp|server misbehaving",
            "the registry {host} is not reachable ({reason}): is it running, and is the"
            " address right?",
        ),
        (
            r"50[0-9] [a-z ]+",
            "the registry {host} failed while storing {name} ({reason}): a fault on its side,"
            " such as a full disk (its log says which)",
        ),
        (
            r"read-only mode|unsupported|405 method not allowed|unexpected status",
            "the registry {host} refused the push of {name} ({reason})",
        ),
    )
)
_REASON = re.compile(
    r"(connection refused|no such host|i/o timeout|network is unreachable|connection reset"
    r"|[0-9]{3} [A-Z][A-Za-z ]+|read-only mode)",
    re.IGNORECASE,
)


def push_failure(tag: str, error: UserError) -> UserError:
    """One line naming the registry for a failed push; ``error`` itself when the build, not
    the push, failed."""
    text = str(error)
    push_lines = [
        line
        for line in text.splitlines()
        if re.search(r"push|registry|blobs|manifests|/v2/|dial tcp|x509|unauthorized", line, re.I)
    ]
    if not push_lines:
        return error
    detail = push_lines[-1]
    host = registry_host(tag)
    reason = _REASON.search(detail)
    for pattern, message in _FAILURES:
        if pattern.search(detail):
            return UserError(
                message.format(
                    host=host,
                    name=repository(tag),
                    reason=reason.group(1) if reason else detail.strip()[-120:],
                )
            )
    return UserError(f"pushing {repository(tag)} to the registry {host} failed: {detail.strip()}")
