"""The web site in a real browser: headless Chromium runs text_insights on Pyodide against the
dev LLM server, from a link that carries the inputs; a bad input is shown at its field."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import write_json

from runner_template.engine import Engine
from runner_template.errors import StepTimeoutError

pytestmark = pytest.mark.llm
TEXT = "The new  release is GREAT: fast builds, tiny images,\tand happy users!"


def expected_statistics(site: Path) -> dict:
    """What the bundle's own python steps give for TEXT, run by the engine on this machine."""
    bundle = json.loads((site / "bundle.json").read_text())
    bundle["workflow"]["steps"] = bundle["workflow"]["steps"][:2]
    bundle["workflow"]["outputs"] = {"s": {"source_reference": "steps.count.statistics"}}
    return Engine(bundle).run({"text": TEXT})["s"]


def test_text_insights_runs_in_the_browser_from_a_link(page, site, site_server, llm_server):
    inputs = quote(json.dumps({"text": TEXT, "max_keywords": 3}))
    endpoint = quote(llm_server.url)
    page.open(f"{site_server.origin}/text_insights/#inputs={inputs}&endpoint={endpoint}&run")
    assert page.wait_for_end() == "done", page.text("error")
    outputs = json.loads(page.text("outputs"))
    assert set(outputs) == {"title", "sentiment", "keywords", "statistics"}
    assert outputs["statistics"] == expected_statistics(site)
    assert isinstance(outputs["title"], str) and outputs["title"]
    steps = page.all("#events li")
    assert [s.get_attribute("id") for s in steps] == [
        "step-clean",
        "step-count",
        "step-sentiment",
        "step-keywords",
        "step-title",
    ]
    assert all(s.get_attribute("data-state") == "done" for s in steps)
    streamed = page.all("#step-title .tokens")[0].text
    assert streamed.strip() and streamed.strip() in json.dumps(outputs["title"]) + streamed
    assert page.element("endpoint").get_attribute("value") == llm_server.url
    page.screenshot("web-text-insights.png")


def test_a_bad_input_shows_the_one_line_error_next_to_its_field(page, site, site_server):
    page.open(f"{site_server.origin}/text_insights/index.html")
    text = page.element("input-text")
    text.clear()
    text.send_keys("Short text.")
    keywords = page.element("input-max_keywords")
    keywords.clear()
    keywords.send_keys("many")
    page.element("run").click()
    assert page.wait_for_end() == "failed"
    message = "input 'max_keywords' must be of type integer, got 'many'"
    assert page.text("error-max_keywords") == message
    assert page.text("error") == f"bad_input: {message}"
    assert page.text("error-text") == ""
    assert "invalid" in keywords.get_attribute("class")
    assert page.text("outputs") == ""
    page.screenshot("web-bad-input.png")


def test_an_openai_compatible_server_streams_to_the_page(
    page, summarizer_site, site_server, llm_server
):
    """simple_summarizer through ``/v1/chat/completions`` (Server-Sent Events): the endpoint
    ends in ``/v1``, which only the OpenAI API chosen on the page can answer."""
    inputs = quote(json.dumps({"text": TEXT, "max_length": 12}))
    endpoint = quote(llm_server.url + "/v1")
    page.open(f"{site_server.origin}/simple_summarizer/#inputs={inputs}&endpoint={endpoint}")
    page.select("provider", "openai")
    page.element("run").click()
    assert page.wait_for_end() == "done", page.text("error")
    summary = json.loads(page.text("outputs"))["summary"]
    streamed = page.all("#step-summarize .tokens")[0].text
    assert summary and streamed.strip() == summary


SLOW = {
    "workflow_id": "slow_writer",
    "version": "1.0.0",
    "portable": True,
    "inputs": {"text": {"type": "string", "required": True}},
    "outputs": {"story": {"source_reference": "steps.write.story"}},
    "steps": [
        {
            "step_id": "write",
            "type": "llm_call",
            "tool": "writer",
            "prompt_template": "Write a long story about {text}.",
            "input_mapping": {"text": "inputs.text"},
            "output_name": "story",
            "timeout": 1,
        }
    ],
    "tools": {"writer": {"type": "llm", "model": "llama3", "max_tokens": 300, "seed": 1}},
}


def test_an_llm_step_over_its_timeout_is_cut_short_with_the_engines_error(
    page, site_builder, site_server, llm_server, tmp_path
):
    """The browser aborts the streaming fetch at the step's timeout: a ``step_timeout`` a
    second or so later, not when the model has written its 300 tokens."""
    workflow = write_json(tmp_path / "slow_writer.json", SLOW)
    bundle = json.loads((site_builder(workflow) / "bundle.json").read_text())
    with pytest.raises(StepTimeoutError) as native:  # the same workflow, natively, streaming
        Engine(bundle, endpoint=llm_server.url).run(
            {"text": "a lighthouse"}, on_event=lambda event: None
        )
    inputs = quote(json.dumps({"text": "a lighthouse"}))
    page.open(f"{site_server.origin}/slow_writer/#inputs={inputs}&endpoint={quote(llm_server.url)}")
    assert page.wait_for_end(60, states=("ready",)) == "ready", page.text("error")
    started = time.monotonic()
    page.element("run").click()
    assert page.wait_for_end(60) == "failed"
    assert time.monotonic() - started < 5  # the step's second, not the model's 300 tokens
    assert page.text("error").startswith("step_timeout: ")
    assert page.text("error").endswith("(step write)") and native.value.step == "write"
