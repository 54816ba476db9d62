"""The bundle contract: one list of keys for both sides, a format the engine checks on load."""

from __future__ import annotations

import json

import pytest

from runner_template import engine
from runner_template.bundle_format import BUNDLE_FORMAT, LLM_KEYS, LLM_OPTION_KEYS
from runner_template.errors import InputError
from runner_template.main import load_bundle


def _write(tmp_path, bundle) -> str:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return str(path)


def _bundle(format_value):
    return {"format": format_value, "workflow": {"id": "w", "steps": []}, "tools": {}}


def test_the_engine_sends_exactly_the_options_the_contract_names():
    assert tuple(engine.LLM_OPTION_KEYS) == LLM_OPTION_KEYS
    assert set(LLM_OPTION_KEYS) <= set(LLM_KEYS)


@pytest.mark.parametrize("version", range(1, BUNDLE_FORMAT + 1))
def test_every_format_up_to_the_engines_own_loads(tmp_path, version):
    assert load_bundle(_write(tmp_path, _bundle(version)))["format"] == version


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (_bundle(BUNDLE_FORMAT + 1), f"format {BUNDLE_FORMAT + 1} and this engine reads"),
        (_bundle(None), "its format is None"),
        (_bundle(True), "its format is True"),
        ({"workflow": {}}, "its format is None"),
        ([1, 2], "a JSON list, not an object"),
    ],
)
def test_a_bundle_of_another_format_is_refused_in_one_line(tmp_path, bundle, message):
    with pytest.raises(InputError) as caught:
        load_bundle(_write(tmp_path, bundle))
    assert message in str(caught.value) and "\n" not in str(caught.value)
