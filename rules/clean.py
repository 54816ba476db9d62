"""``docker-workflow clean``: remove images this tool built, found by label, nothing else."""

from __future__ import annotations

from rules.docker_env import docker_client, docker_error
from rules.image import MANAGED_LABEL


def managed_images(workflow_id: str | None) -> list:
    """Images carrying our label (and ``workflow.id``, when given)."""
    labels = [f"{MANAGED_LABEL}=true"]
    if workflow_id is not None:
        labels.append(f"workflow.id={workflow_id}")
    return docker_client().images.list(filters={"label": labels})


def describe(image) -> str:
    tags = ", ".join(image.tags) or "<untagged>"
    short = image.short_id.removeprefix("sha256:")
    return f"{tags} ({short}, workflow {image.labels.get('workflow.id')})"


def remove_images(images: list) -> int:
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
