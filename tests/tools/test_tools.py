"""Each shipped tool does its job: executable tools in-process, LLM tools on the real model."""

import json
from pathlib import Path

import pytest
from helpers import minimal_workflow, run_local, write_json

from rules.files.registry import BUILTIN_TOOLS, Registry
from runner_template.errors import ToolError
from runner_template.pytools import run_executable_tool

REGISTRY = Registry([BUILTIN_TOOLS])


def run_tool(tool_id, payload):
    return run_executable_tool(tool_id, REGISTRY.load(tool_id).definition["source"], payload, "t")


def test_basic_calculator():
    assert run_tool("basic_calculator", {"operation": "multiply", "a": 7, "b": 6}) == {
        "result": 42,
        "operation": "multiply",
    }
    # The original tool answers a division by zero with float('inf'), which JSON cannot carry:
    # a clear tool error, not an output no JSON reader would take.
    with pytest.raises(ToolError, match="Infinity is not a JSON number"):
        run_tool("basic_calculator", {"operation": "divide", "a": 1, "b": 0})


def test_save_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_tool("save_to_disk", {"filename": "a.txt", "content": "hello"})
    assert out["status"] == "saved"
    assert Path(out["path"]).read_text() == "hello"


def test_data_processor_and_result_combiner():
    assert run_tool("data_processor", {"data": "Hello  World\nTwo"}) == {
        "length": 16,
        "words": 3,
        "lines": 2,
        "normalized": "hello world two",
    }
    assert run_tool("result_combiner", {"x": 1, "y": 2}) == {
        "combined": {"x": 1, "y": 2},
        "count": 2,
    }


def test_word_counter():
    out = run_tool("word_counter", {"text": "The cat. The dog! A bird?", "top": 1})
    assert out == {"words": 6, "characters": 25, "sentences": 3, "top_words": [["the", 2]]}


def test_json_field_extractor():
    data = {"items": [{"name": "a"}, {"name": "b"}]}
    assert run_tool("json_field_extractor", {"data": data, "path": "items.1.name"}) == {
        "value": "b",
        "found": True,
    }
    assert run_tool("json_field_extractor", {"data": json.dumps(data), "path": "items.9"}) == {
        "value": None,
        "found": False,
    }


def test_text_cleaner():
    out = run_tool("text_cleaner", {"text": "  Cafe\u0301\x00  au\n\n lait ", "lowercase": True})
    assert out == {"text": "café au lait", "removed": 8}


LLM_CASES = {
    "summarizer": {
        "content": "Bees make honey from nectar. They live in hives and pollinate flowers."
    },
    "content_generator": {"prompt": "A two-sentence product blurb for a blue mug."},
    "outline_generator": {"topic": "home composting"},
    "code_reviewer": {"code": "def add(a, b):\n    return a - b\n"},
    "translator": {"text": "Good morning, friend.", "target_language": "French"},
    "title_generator": {"text": "A guide to growing tomatoes on a small balcony."},
    "keyword_extractor": {
        "text": "Solar panels convert sunlight into electricity.",
        "max_keywords": 3,
    },
    "sentiment_analyzer": {"text": "This is the worst service I have ever had."},
}


def test_every_llm_tool_is_covered():
    llm_ids = {i for i in REGISTRY.ids() if REGISTRY.load(i).kind == "llm"}
    assert llm_ids == set(LLM_CASES)


@pytest.mark.parametrize("tool_id", sorted(LLM_CASES))
def test_llm_tool_on_the_real_model(tool_id, llm_server, tmp_path):
    values = LLM_CASES[tool_id]
    inputs = {name: {"type": "any"} for name in values}
    step = {
        "step_id": "s",
        "type": "llm_call",
        "tool": tool_id,
        "input_mapping": {name: f"inputs.{name}" for name in values},
        "output_name": "out",
    }
    wf = write_json(
        tmp_path / "workflows" / "w.json",
        minimal_workflow(
            inputs=inputs, steps=[step], outputs={"out": {"source_reference": "steps.s.out"}}
        ),
    )
    proc, outputs = run_local(wf, values, llm_server.url)
    assert proc.returncode == 0, proc.stderr
    out = outputs["out"]
    fmt = REGISTRY.load(tool_id).definition.get("format")
    if fmt is None:
        assert isinstance(out, str) and out.strip()
    else:
        assert isinstance(out, dict)
        if tool_id == "sentiment_analyzer":
            assert out["sentiment"] in {"positive", "negative", "neutral"}
        if tool_id == "keyword_extractor":
            assert isinstance(out["keywords"], list)
