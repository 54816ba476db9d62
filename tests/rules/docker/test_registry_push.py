"""Pushed-image records and push errors, without an engine (the real pushes are in
tests/docker/test_registry.py); the error texts are the ones buildx printed against the test
registries."""

from __future__ import annotations

import json

import pytest

from rules.docker.registry_push import (
    push_failure,
    pushed_reference,
    record_push,
    registry_host,
    repository,
)
from rules.errors import UserError

DIGEST = "sha256:" + "ab" * 32
LABELS = {
    "workflow.bundle-digest": "sha256:1",
    "workflow.engine-digest": "e1",
    "workflow.runtime": "scratch",
    "docker-workflow.image-recipe": "r1",
    "workflow.platforms": "linux/amd64,linux/arm64",
}


@pytest.mark.parametrize(
    ("reference", "name", "host"),
    [
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b", "127.0.0.1:5000"),
        ("localhost/calc", "localhost/calc", "localhost"),
        ("reg.example/team/calc@" + DIGEST, "reg.example/team/calc", "reg.example"),
        ("team/calc:latest", "team/calc", "docker.io"),
        ("calc", "calc", "docker.io"),
    ],
)
def test_names_and_hosts_follow_dockers_rule(reference, name, host):
    assert repository(reference) == name
    assert registry_host(reference) == host


def test_a_push_is_recorded_and_found_for_the_same_build_only(tmp_path):
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"containerimage.digest": DIGEST}))
    tag = "127.0.0.1:5000/ship/calc:1"
    assert record_push(tag, metadata, LABELS) == f"127.0.0.1:5000/ship/calc@{DIGEST}"
    assert pushed_reference(tag) == f"127.0.0.1:5000/ship/calc@{DIGEST}"
    one_platform = {**LABELS, "workflow.platforms": "linux/amd64"}
    assert pushed_reference(tag, one_platform) == f"127.0.0.1:5000/ship/calc@{DIGEST}"
    edited = {**LABELS, "workflow.bundle-digest": "sha256:2"}
    assert pushed_reference(tag, edited) is None
    assert pushed_reference("127.0.0.1:5000/ship/other:1") is None
    assert pushed_reference(f"x/y@{DIGEST}") == f"x/y@{DIGEST}"


def test_no_digest_from_buildx_is_one_line(tmp_path):
    metadata = tmp_path / "metadata.json"
    metadata.write_text("{}")
    with pytest.raises(UserError, match="reported no digest"):
        record_push("a/b:1", metadata, LABELS)


HOST = "127.0.0.1:5799"
FAILURES = {
    "not reachable (connection refused)": (
        f"ERROR: failed to solve: failed to push {HOST}/t/x:1: failed to do request: Head"
        f' "https://{HOST}/v2/t/x/blobs/sha256:d29": dial tcp {HOST}: connect: connection refused'
    ),
    "failed while storing": (
        f"ERROR: failed to solve: failed to push {HOST}/t/x:1: unexpected status from POST"
        f" request to http://{HOST}/v2/t/x/blobs/uploads/: 500 Internal Server Error"
    ),
    "out of space": (
        f"ERROR: failed to solve: failed to push {HOST}/t/x:1: unexpected status from PUT"
        f" request to http://{HOST}/v2/t/x/blobs/uploads/1: 507 Insufficient Storage"
    ),
    "docker login": (
        f"ERROR: failed to solve: failed to push {HOST}/t/x:1: unexpected status from HEAD"
        f" request to https://{HOST}/v2/t/x/blobs/sha256:dba: 401 Unauthorized"
    ),
}


@pytest.mark.parametrize("expected", sorted(FAILURES))
def test_push_failures_become_one_line_naming_the_registry(expected):
    error = UserError(f"building image {HOST}/t/x:1 failed:\n  #6 pushing\n  {FAILURES[expected]}")
    found = push_failure(f"{HOST}/t/x:1", error)
    assert len(found.lines()) == 1
    assert HOST in str(found) and expected in str(found)


def test_a_failed_build_step_is_not_taken_for_a_push_failure():
    error = UserError("building image a/b:1 failed:\n  ERROR: failed to compute cache key")
    assert push_failure("a/b:1", error) is error
