"""The pieces of ``batch --engine swarm`` that carry data without a shared file system: results
joined per task from log frames (a long line arrives as several partial messages, frames of
tasks interleave), the task identity of a ``details`` frame, inputs cut into config-sized chunks
that the engine reads back as one stream, and which registries only this machine reaches."""

from __future__ import annotations

import json

from rules.deploy.batch.swarm import CHUNK_BYTES, _chunks, loopback_registry
from rules.deploy.batch.swarm_logs import LineJoiner, split_details
from runner_template.batch import open_input, read_lines


def test_lines_are_joined_per_task_across_partial_and_interleaved_frames():
    taken = []
    joiner = LineJoiner(taken.append)
    joiner.feed("a", b'{"index": 1, "outputs": "x')
    joiner.feed("b", b'{"index": 2}\n{"index": 3')
    joiner.feed("a", b'yz"}\n')
    joiner.feed("b", b"}\n\n")
    assert [json.loads(line)["index"] for line in taken] == [2, 1, 3]
    assert joiner.pending == {}


def test_a_details_frame_names_its_task():
    attributes = b"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1"
    frame = attributes + b',com.docker.swarm.task.id=t9 {"index": 4}\n'
    assert split_details(frame) == ("t9", b'{"index": 4}\n')
    assert split_details(b"no-attributes") == ("", b"")


def test_chunks_fit_a_config_and_a_folder_of_them_reads_as_the_shard(tmp_path):
    lines = [b'{"index": %d, "inputs": {"data": "%s"}}\n' % (i, b"x" * 700_000) for i in range(3)]
    data = b"".join(lines)
    chunks = _chunks(data)
    assert len(chunks) == -(-len(data) // CHUNK_BYTES) and max(map(len, chunks)) <= 500 * 1024
    for number, chunk in enumerate(chunks):
        (tmp_path / f"{number:05d}").write_bytes(chunk)
    with open_input(str(tmp_path)) as stream:
        assert [line for _, line in read_lines(stream)] == lines
    assert _chunks(b"") == [b""]


def test_only_loopback_registries_keep_tasks_on_this_node():
    assert loopback_registry("127.0.0.1:5000/ship/calc@sha256:ab")
    assert loopback_registry("localhost:5000/x@sha256:ab")
    assert loopback_registry("[::1]:5000/x@sha256:ab")
    assert not loopback_registry("172.17.0.1:5000/ship/calc@sha256:ab")
    assert not loopback_registry("registry.example.com/calc@sha256:ab")
    assert not loopback_registry("library/python@sha256:ab")
