"""Reading the user's JSON and YAML: every refusal is one line naming the file and the problem."""

from __future__ import annotations

import os

import pytest

from rules.errors import InvalidInput
from rules.files.jsonfile import load_json, load_yaml, parse_json, read_bytes, read_text


def _message(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text.strip()
    return text


def test_json_reads_with_a_bom_and_reports_line_and_column(tmp_path):
    good = tmp_path / "good.json"
    good.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')
    assert load_json(good) == {"a": [1, 2]}
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n}')
    with pytest.raises(InvalidInput) as caught:
        load_json(bad)
    assert "bad.json" in _message(caught) and "line 3" in _message(caught)


def test_a_key_twice_in_one_object_is_refused():
    with pytest.raises(InvalidInput) as caught:
        parse_json('{"a": 1, "a": 2}', "wf.json")
    assert "'a' appears twice" in _message(caught)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.json", "file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _fifo(d / "pipe"), "not a regular file"),
    ],
)
def test_only_regular_files_are_read(tmp_path, make, message):
    with pytest.raises(InvalidInput) as caught:
        read_bytes(make(tmp_path))
    assert message in _message(caught)


def _fifo(path):
    os.mkfifo(path)
    return path


def test_size_and_encoding_limits(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b"x" * 11)
    with pytest.raises(InvalidInput) as caught:
        read_bytes(path, limit=10)
    assert "over 10 bytes" in _message(caught)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput) as caught:
        read_text(path)
    assert "not UTF-8" in _message(caught)


def test_tool_yaml_refuses_aliases_and_duplicate_keys(tmp_path):
    path = tmp_path / "tool.yaml"
    path.write_text("type: llm\nllm:\n  model: m\n")
    assert load_yaml(path) == {"type": "llm", "llm": {"model": "m"}}
    path.write_text("a: &x 1\nb: *x\n")
    with pytest.raises(InvalidInput, match="aliases"):
        load_yaml(path)
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(InvalidInput):
        load_yaml(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tags: !!set {a, b}\n", r"line 1 column 7: a YAML set \(tag:yaml.org,2002:set\)"),
        ("version: 2024-01-01\n", r"line 1 column 10: a YAML timestamp"),
        ("when: !!timestamp 2001-12-14t21:59:43.10-05:00\n", "a YAML timestamp"),
        ("blob: !!binary aGVsbG8=\n", "a YAML binary"),
        ("list: !!omap [a: 1]\n", "a YAML omap"),
        ("p: !!pairs [a: 1]\n", "a YAML pairs"),
        ("1: one\n", r"line 1 column 1: a key must be a string \(JSON has no integer keys\)"),
        ("yes: 1\n", "JSON has no boolean keys"),
        ("? [a, b]\n: 1\n", "a key must be a string"),
        ("a: !!python/object:os.system x\n", "could not determine a constructor"),
    ],
)
def test_tool_yaml_is_read_as_json_data_only(tmp_path, text, problem):
    """Every non-JSON YAML type is refused when the file is loaded, in one line."""
    path = tmp_path / "tool.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=problem) as caught:
        load_yaml(path)
    assert _message(caught).startswith(f"{path}: $: invalid YAML at line ")


def test_an_integer_of_too_many_digits_is_one_line_in_json_and_yaml(tmp_path):
    big = "9" * 5000
    path = tmp_path / "tool.yaml"
    path.write_text(f"type: llm\nllm:\n  num_ctx: {big}\n")
    with pytest.raises(InvalidInput) as caught:
        load_yaml(path)
    assert _message(caught) == (
        f"{path}: $: invalid YAML at line 3 column 12: an integer of 5000 digits (at most 4300)"
    )
    path.write_text(f"type: llm\nllm:\n  num_ctx: 0x{big}\n")  # hexadecimal: refused alike
    with pytest.raises(InvalidInput, match=r"an integer of 5001 digits \(at most 4300\)"):
        load_yaml(path)
    path.write_text(f"a: {big}.5\n")  # a float that large is infinity
    with pytest.raises(InvalidInput, match=r"\$\.a: not a finite number"):
        load_yaml(path)
    # The number's own path, not the document's root: the parser marks it, the walk names it.
    with pytest.raises(InvalidInput, match=r"^w\.json: \$\.a\[0\]: an integer of 5000 digits"):
        parse_json(f'{{"a": [{big}]}}', "w.json")
