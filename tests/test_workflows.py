"""The repository's own workflows, end to end with ``run --local`` on the real model."""

import json

import pytest
from helpers import WORKFLOWS, run_local

SAMPLES = {
    "article_writer.json": {"topic": "rain gardens", "target_language": "German"},
    "calculator.json": {"a": 3, "b": 4, "operation": "power"},
    "parallel_profile.json": {"data": "one two three"},
    "simple_summarizer.json": {
        "text": "Rivers carry water to the sea. They shape valleys.",
        "max_length": 10,
    },
    "text_insights.json": {"text": "The new library is bright, quiet and full of great books!"},
    "url_analyzer.json": {"url": "http://example.org", "analysis_depth": "detailed"},
}


def test_every_workflow_has_a_sample():
    assert {p.name for p in WORKFLOWS.glob("*.json")} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_workflow_runs_end_to_end(name, llm_server):
    proc, outputs = run_local(WORKFLOWS / name, SAMPLES[name], llm_server.url)
    assert proc.returncode == 0, proc.stderr
    declared = json.loads((WORKFLOWS / name).read_text())["outputs"]
    assert set(outputs) == set(declared)
    assert all(value not in (None, "", {}) for value in outputs.values())
    if name == "calculator.json":
        assert outputs["result"] == 81
    if name == "text_insights.json":
        assert "step sentiment: start" in proc.stderr and "step keywords: start" in proc.stderr
