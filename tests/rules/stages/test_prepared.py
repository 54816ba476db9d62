"""What a target's folder holds after render, read back the way the compile and image steps do."""

from __future__ import annotations

import hashlib
import json

from helpers import minimal_workflow, write_json

from rules.graph.build import prepare
from rules.stages.prepared import EMPTY_LOCK, digest, load_prepared, read_analysis, read_lock


def test_a_prepared_target_reads_back_whole(tmp_path):
    path = write_json(tmp_path / "wf.json", minimal_workflow())
    prepared = prepare(path, platforms=["linux/amd64"], cache=tmp_path / "cache")
    out = prepared.out_dir.parent
    assert out.parent == (tmp_path / "cache" / "targets").resolve()  # -o DIR: the folder given
    again = load_prepared(out)
    assert again == prepared
    assert again.bundle_digest == digest(again.bundle_path.read_bytes())
    assert again.entry_point.is_file() and json.loads(again.bundle_path.read_text())["format"]
    assert read_analysis(out).workflow_id == "mini"
    assert read_lock(out)["requirements"] == []


def test_no_lock_file_reads_as_the_empty_lock(tmp_path):
    assert read_lock(tmp_path) == EMPTY_LOCK


def test_the_digest_is_sha256_of_the_bytes():
    assert digest(b"x") == "sha256:" + hashlib.sha256(b"x").hexdigest()
