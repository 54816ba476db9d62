"""The one component that asks the Docker engine about images: find, label, list, remove.

Through the engine's API (the Docker SDK), not the CLI: these calls run for every target of a
no-op ``doit`` (is the image current?), and an API call costs milliseconds where a CLI process
costs 0.2 s. Builds go through buildx (``rules/buildx.py``); containers through
``rules/containers.py``.
"""

from __future__ import annotations

from rules.docker_env import docker_client, docker_error

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

    try:
        docker_client().images.remove(reference, noprune=False)
    except ImageNotFound:
        pass
    except APIError as error:
        raise docker_error(f"removing the tag {reference}", error) from None
