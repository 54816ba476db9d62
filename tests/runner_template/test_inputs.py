import pytest

from runner_template.errors import InputError
from runner_template.inputs import prepare_inputs

DECLARED = {
    "text": {"type": "string", "required": True},
    "n": {"type": "number", "default": 100},
    "k": {"type": "integer", "required": False},
    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
    "url": {"type": "string", "pattern": "^https?://"},
}


def test_defaults_are_filled_and_optional_inputs_left_out():
    assert prepare_inputs(DECLARED, {"text": "t"}) == {"text": "t", "n": 100, "mode": "a"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing required input 'text'"),
        ({"text": 1}, "input 'text' must be of type string"),
        ({"text": "t", "n": "5"}, "input 'n' must be of type number"),
        ({"text": "t", "n": True}, "input 'n' must be of type number"),
        ({"text": "t", "k": 1.5}, "input 'k' must be of type integer"),
        ({"text": "t", "mode": "c"}, "must be one of 'a', 'b'"),
        ({"text": "t", "url": "ftp://x"}, "does not match pattern"),
        ({"text": "t", "txet": "x"}, r"unknown input\(s\): 'txet'"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(given, message):
    with pytest.raises(InputError, match=message):
        prepare_inputs(DECLARED, given)


def test_inputs_must_be_an_object():
    with pytest.raises(InputError, match="must be a JSON object"):
        prepare_inputs(DECLARED, ["text"])
