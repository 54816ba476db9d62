import pytest

from runner_template.references import (
    Mapping,
    MappingError,
    Reference,
    ReferenceSyntaxError,
    parse_reference,
    resolve_mapping_value,
    resolve_reference,
    walk,
)


def test_parse_input_and_step_references():
    assert parse_reference("inputs.text") == Reference("inputs", "text", None, ())
    assert parse_reference("steps.s1.out.a.0") == Reference("steps", "s1", "out", ("a", "0"))


@pytest.mark.parametrize("text", ["input.text", "steps.s1", "text", "inputs.", "steps..x"])
def test_malformed_references_say_how_to_write_one(text):
    with pytest.raises(ReferenceSyntaxError, match=r"inputs\.NAME"):
        parse_reference(text)


def test_dollar_dialect_is_rejected_with_the_fix():
    with pytest.raises(ReferenceSyntaxError, match=r"write 'inputs\.csv_file'"):
        parse_reference("${inputs.csv_file}")


def test_resolve_walks_into_objects_and_lists():
    outputs = {"s1": {"out": {"items": [{"name": "a"}, {"name": "b"}]}}}
    assert resolve_reference(parse_reference("steps.s1.out.items.1.name"), {}, outputs) == "b"
    assert resolve_reference(parse_reference("steps.s1.out.items.-1.name"), {}, outputs) == "b"


def test_resolve_missing_key_is_a_lookup_error():
    with pytest.raises(LookupError, match="no key 'nope'"):
        resolve_reference(parse_reference("inputs.x.nope"), {"x": {"a": 1}}, {})


def test_mapping_values_literal_and_constants():
    assert resolve_mapping_value({"literal": "inputs.x"}, {"x": 1}, {}) == "inputs.x"
    assert resolve_mapping_value(3, {}, {}) == 3
    assert resolve_mapping_value("inputs.x", {"x": 1}, {}) == 1


@pytest.mark.parametrize("key", ["\u0663", "1\u0663", "\u00b2", "\uff13"])
def test_keys_with_non_ascii_digits_are_refused_not_taken_as_indexes(key):
    with pytest.raises(ReferenceSyntaxError, match="digits other than 0-9"):
        parse_reference(f"inputs.items.{key}")
    with pytest.raises(LookupError):  # the walk itself does not take them either
        walk([10, 11, 12, 13], (key,), "w")


def test_list_indexes_are_ascii_and_bounded():
    assert walk([10, 11, 12, 13], ("3",), "w") == 13
    assert walk([10, 11, 12, 13], ("-1",), "w") == 13
    with pytest.raises(LookupError):
        walk([1], ("9" * 5000,), "w")  # not int()'s digit-limit ValueError


def test_a_mapping_fetches_what_resolve_mapping_value_does_in_the_order_written():
    written = {
        "z": "inputs.x",
        "a": "steps.s1.out",
        "deep": "steps.s1.out.items.1",
        "lit": {"literal": "inputs.x"},
        "n": 3,
        "null": None,
    }
    inputs, outputs = {"x": 1}, {"s1": {"out": {"items": [10, 11]}}}
    values = Mapping(written.items()).resolve(inputs, outputs)
    assert list(values) == list(written)
    assert values == {k: resolve_mapping_value(v, inputs, outputs) for k, v in written.items()}


@pytest.mark.parametrize(
    ("written", "inputs", "outputs"),
    [
        ("inputs.x", {}, {}),
        ("steps.s1.out", {}, {}),
        ("steps.s1.out", {}, {"s1": {"other": 1}}),
        ("steps.s1.out.items.5", {}, {"s1": {"out": {"items": [1]}}}),
    ],
)
def test_a_missing_value_of_a_mapping_says_which_and_why(written, inputs, outputs):
    with pytest.raises(LookupError) as expected:
        resolve_reference(parse_reference(written), inputs, outputs)
    with pytest.raises(MappingError) as caught:
        Mapping([("k", "inputs.ok"), ("v", written)]).resolve({"ok": 1, **inputs}, outputs)
    assert caught.value.key == "v" and str(caught.value) == str(expected.value)


def test_a_mapping_of_text_that_is_no_reference_fails_at_each_run():
    mapping = Mapping([("k", "no reference")])
    for _ in range(2):
        with pytest.raises(ReferenceSyntaxError):
            mapping.resolve({}, {})
    with pytest.raises(ReferenceSyntaxError):  # outputs must all be references
        Mapping([("k", "no reference")], references=True)
