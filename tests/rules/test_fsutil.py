"""Atomic output: a target is absent, the old version or the complete new one; never torn."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rules.fsutil import atomic_write, file_sha256, locked, replace_tree, staging_dir


def test_atomic_write_creates_folders_and_leaves_an_identical_file_alone(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    assert atomic_write(path, b"one") is True and path.read_bytes() == b"one"
    os.utime(path, (1, 1))
    assert atomic_write(path, b"one") is False and path.stat().st_mtime == 1
    assert atomic_write(path, b"two") is True and path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out"
    atomic_write(path, b"old")
    with pytest.raises(TypeError):  # the write itself fails (text to a binary file)
        atomic_write(path, "new")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_replace_tree_swaps_a_whole_folder(tmp_path):
    final = tmp_path / "tree"
    first = staging_dir(final)
    (first / "a").write_text("1")
    replace_tree(first, final)
    second = staging_dir(final)
    (second / "b").write_text("2")
    replace_tree(second, final)
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_locked_makes_a_second_holder_wait(tmp_path):
    lock = tmp_path / "locks" / "x.lock"
    order: list[str] = []

    def second() -> None:
        with locked(lock):
            order.append("second")

    with locked(lock):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first done")
    thread.join(timeout=10)
    assert order == ["first done", "second"]


def test_file_sha256_reads_in_blocks(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * (3 << 20))
    import hashlib

    assert file_sha256(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
