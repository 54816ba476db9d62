"""Bounded JSON parsing: depth, non-finite numbers, lone surrogates."""

import json

import pytest

from runner_template.jsonsafe import MAX_DEPTH, JSONLimitError, loads


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deep_nesting_is_refused_whatever_the_depth(depth):
    with pytest.raises(JSONLimitError, match="nested more than"):
        loads("[" * depth + "]" * depth)
    with pytest.raises(JSONLimitError, match="nested more than"):
        loads('{"a":' * depth + "1" + "}" * depth)


def test_the_depth_limit_itself_is_fine():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)


@pytest.mark.parametrize("text", ['{"t": NaN}', '{"t": Infinity}', "[-Infinity]", '{"t": 1e999}'])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(JSONLimitError, match="finite"):
        loads(text)


def test_lone_surrogates_are_refused_only_when_asked():
    text = '{"d": "\\ud800"}'
    assert loads(text) == {"d": "\ud800"}
    with pytest.raises(JSONLimitError, match="lone surrogate") as caught:
        loads(text, text_checks=True)
    assert caught.value.where == "$.d"


def test_syntax_errors_stay_json_errors():
    with pytest.raises(json.JSONDecodeError):
        loads("{")
