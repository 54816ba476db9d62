"""Bounded JSON parsing: depth, non-finite numbers, lone surrogates."""

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner_template.jsonsafe import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    JSONLimitError,
    _parse_int,
    _reject_constant,
    check_tree,
    dumps,
    loads,
)


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


@pytest.mark.parametrize("digits", [4301, 5000, 100_000])
def test_integers_beyond_the_digit_limit_are_refused_not_a_bare_value_error(digits):
    for text in ("1" * digits, "-" + "1" * digits, '{"a": [' + "9" * digits + "]}"):
        with pytest.raises(JSONLimitError, match=f"an integer of {digits} digits"):
            loads(text)
    assert loads("1" * MAX_INT_DIGITS) == int("1" * MAX_INT_DIGITS)


@pytest.mark.parametrize("limit", [0, 10_000, 640])
def test_the_digit_limit_holds_whatever_a_tool_set_the_interpreters_to(limit):
    # Integers are left to C while the interpreter's own limit is at most ours; a tool's code
    # (run in this process) may lift or lower that, and the bound and its message stay.
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(limit)
    try:
        with pytest.raises(JSONLimitError, match="an integer of 5000 digits") as caught:
            loads('{"a": [1, ' + "9" * 5000 + "]}")
        assert caught.value.where == "$.a[1]"
        assert loads('{"a": [1, ' + "9" * 600 + "]}")["a"][1] == int("9" * 600)
    finally:
        sys.set_int_max_str_digits(before)


def test_a_limit_lifted_during_the_scan_still_finds_the_long_integer(monkeypatch):
    # The plain scan trusts the interpreter's limit read before it; a tool's thread may set it
    # to 0 while the scan waits in the float hook. Read again after the scan, the change
    # sends the value through the walk.
    from runner_template import jsonsafe

    readings = iter([MAX_INT_DIGITS, 0])
    before = sys.get_int_max_str_digits()
    monkeypatch.setattr(jsonsafe, "_int_limit", lambda: next(readings))
    sys.set_int_max_str_digits(0)  # what the tool's thread did, as the scan sees it
    try:
        with pytest.raises(JSONLimitError, match="more than 4300 digits") as caught:
            loads('{"a": [1.5, ' + "9" * 5000 + "]}")
    finally:
        sys.set_int_max_str_digits(before)
    assert caught.value.where == "$.a[1]"


def test_integers_made_by_code_are_checked_before_a_writer_meets_them():
    with pytest.raises(JSONLimitError, match="more than 4300 digits") as caught:
        check_tree({"a": [1, 10**5000]})
    assert caught.value.where == "$.a[1]"
    check_tree(10**4299)
    with pytest.raises(JSONLimitError, match="cannot be written as JSON"):
        dumps([10**5000])
    assert dumps({"é": 1}) == '{"é": 1}'


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_the_reused_writer_writes_what_json_dumps_writes(value):
    # dumps() reuses one C writer (no per-call set-up): the same text as the standard one's.
    assert dumps(value) == json.dumps(value, ensure_ascii=False)


def test_a_circular_value_is_a_limit_error_not_a_crash():
    looped: list = []
    looped.append(looped)
    with pytest.raises(JSONLimitError, match="cannot be written as JSON"):
        dumps(looped)
    assert dumps([1, {"a": "b"}]) == '[1, {"a": "b"}]'  # the writer is fine after it


_LEAVES = st.sampled_from(
    ["1", "-0", "2.5", "1e308", "1e999", "-1e400", "9" * 4301, '"a"', '"\\u00e9"', '"\\ud800"',
     '"\\\\u"', '"\u00e9"', "true", "null"]
)  # fmt: skip


def _documents(leaf: str, shape: list[int]) -> str:
    """``leaf`` nested in the lists (0), objects with a plain second key (1), objects whose
    second key is an escape (2) and objects with a repeated key (3) of ``shape``, outermost
    first."""
    text = leaf
    for kind in reversed(shape):
        if kind == 0:
            text = f"[0, {text}]"
        else:
            second = {1: '"b"', 2: '"\\u0041"', 3: '"k"'}[kind]
            text = f'{{"k": {text}, {second}: 1}}'
    return text


def _outcome(read, text: str, **bounds) -> tuple:
    try:
        return ("ok", repr(read(text, **bounds)))
    except JSONLimitError as error:
        return ("limit", error.message, error.where)


def _always_walked(text: str, **bounds):
    value = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    check_tree(value, **bounds)
    return value


@settings(max_examples=400, deadline=None)
@given(
    _LEAVES,
    st.lists(st.sampled_from([0, 1, 2, 3]), max_size=8),
    st.integers(min_value=1, max_value=6),
    st.booleans(),
    st.booleans(),
)
def test_leaving_the_walk_out_never_changes_the_outcome(
    leaf, shape, max_depth, text_checks, as_bytes
):
    # loads skips check_tree's walk when the text shows it would find nothing: the outcome
    # (value or error, message and path) is the walk's, for every bound, text or bytes.
    text = _documents(leaf, shape)
    document = text.encode() if as_bytes else text
    bounds = {"max_depth": max_depth, "text_checks": text_checks}
    assert _outcome(loads, document, **bounds) == _outcome(_always_walked, document, **bounds)
