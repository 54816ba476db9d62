"""The one component that asks the Docker engine about images: find, label, list, remove.

The labels of images are asked for on every no-op ``doit`` run (is each target's image
current?), so that question has a fast path: one ``docker image inspect`` of every wanted tag at
once (about 20 ms in all), where importing the Docker SDK alone costs about 150 ms. Everything
else (finding one image, listing by label, removing) goes through the SDK. Builds go through
buildx (``rules/docker/buildx.py``); containers through ``rules/docker/containers.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from rules.docker.engine import docker_client, docker_error

_labels_cache: dict[str, dict[str, str] | None] = {}
_wanted: set[str] = set()


def normalize(reference: str) -> str:
    """``name`` -> ``name:latest``; Docker Hub's implicit prefixes dropped (as RepoTags shows)."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix) :]
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last or "@" in last else reference + ":latest"


def want_labels(reference: str) -> None:
    """Ask for ``reference``'s labels with the next batch (the graph names all its tags)."""
    _wanted.add(normalize(reference))


def forget(reference: str) -> None:
    """Drop what is known of ``reference`` (it was just built or removed)."""
    _labels_cache.pop(normalize(reference), None)


def _inspect_batch(references: list[str]) -> bool:
    """Fill the cache for ``references`` with one CLI call; False when the CLI cannot answer."""
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .RepoTags}}\t{{json .Config.Labels}}",
            *references,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 and "No such image" not in result.stderr:
        return False  # the engine is down or the CLI is unhappy: the SDK says why
    found: dict[str, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        tags_text, _, labels_text = line.partition("\t")
        try:
            tags, labels = json.loads(tags_text) or [], json.loads(labels_text) or {}
        except ValueError:
            return False
        for tag in tags:
            found[normalize(tag)] = labels
    for reference in references:
        _labels_cache[reference] = found.get(reference)
    return True


MANAGED_LABEL = "docker-workflow.managed"


def local_image(reference: str):
    """The engine's image ``reference`` (a Docker SDK object), or None; never pulls."""
    from docker.errors import ImageNotFound

    try:
        return docker_client().images.get(reference)
    except ImageNotFound:
        return None


def image_labels(reference: str) -> dict[str, str] | None:
    """The labels of a local image, or None when it does not exist."""
    key = normalize(reference)
    if key not in _labels_cache and "@" not in key:
        _inspect_batch(sorted(_wanted - _labels_cache.keys() | {key}))
    if key in _labels_cache:
        return _labels_cache[key]
    image = local_image(reference)
    return None if image is None else dict(image.labels or {})


def managed_images(workflow_id: str | None = None, labels: dict[str, str] | None = None) -> list:
    """Images this tool built (our label), narrowed to ``workflow_id`` and extra ``labels``."""
    wanted = [f"{MANAGED_LABEL}=true"]
    if workflow_id is not None:
        wanted.append(f"workflow.id={workflow_id}")
    wanted += [f"{key}={value}" for key, value in (labels or {}).items()]
    return docker_client().images.list(filters={"label": wanted})


def describe(image) -> str:
    tags = ", ".join(image.tags) or "<untagged>"
    short = image.short_id.removeprefix("sha256:")
    return f"{tags} ({short}, workflow {image.labels.get('workflow.id')})"


def remove_images(images: list) -> int:
    """Remove ``images`` (already gone ones are fine); return how many were removed."""
    from docker.errors import APIError, ImageNotFound

    removed = 0
    for image in images:
        for tag in image.tags:
            forget(tag)
        try:
            docker_client().images.remove(image.id, force=True)
            removed += 1
        except ImageNotFound:
            continue
        except APIError as error:
            raise docker_error(f"removing {describe(image)}", error) from None
    return removed


def remove_tag(reference: str) -> None:
    """Untag ``reference`` (the image stays while other tags or containers use it)."""
    from docker.errors import APIError, ImageNotFound

    forget(reference)
    try:
        docker_client().images.remove(reference, noprune=False)
    except ImageNotFound:
        pass
    except APIError as error:
        raise docker_error(f"removing the tag {reference}", error) from None
