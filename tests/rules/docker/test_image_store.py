"""Image references as the engine lists them, so one cache answers for every spelling."""

from __future__ import annotations

import pytest

from rules.docker.image_store import normalize


@pytest.mark.parametrize(
    ("reference", "listed"),
    [
        ("workflow-calc", "workflow-calc:latest"),
        ("docker.io/library/busybox", "busybox:latest"),
        ("docker.io/edge/summarizer:1", "edge/summarizer:1"),
        ("localhost:5000/wf", "localhost:5000/wf:latest"),
        ("localhost:5000/wf:2", "localhost:5000/wf:2"),
        ("wf@sha256:" + "a" * 64, "wf@sha256:" + "a" * 64),
    ],
)
def test_references_normalize_as_repo_tags_show_them(reference, listed):
    assert normalize(reference) == listed
