from runner_template.templates import placeholders, render


def test_mapped_names_are_replaced():
    assert render("Summarize {text} in {n} words", {"text": "abc", "n": 50}) == (
        "Summarize abc in 50 words"
    )


def test_json_examples_in_prompts_survive():
    template = 'Reply as {"category": "...", "score": 1} about {text}'
    assert (
        render(template, {"text": "cats"}) == 'Reply as {"category": "...", "score": 1} about cats'
    )


def test_unknown_names_and_odd_braces_stay_literal():
    assert (
        render("{missing} {text} { spaced } {1} {", {"text": "x"}) == "{missing} x { spaced } {1} {"
    )


def test_doubled_braces_are_literal_braces():
    assert render("{{text}} is {text}", {"text": "t"}) == "{text} is t"


def test_non_string_values_are_written_as_json():
    assert render("{obj} {flag} {none}", {"obj": {"a": [1]}, "flag": True, "none": None}) == (
        '{"a": [1]} true null'
    )


def test_substituted_values_are_not_rescanned():
    assert render("{a}", {"a": "{b}", "b": "no"}) == "{b}"


def test_placeholders_lists_names_once_in_order():
    assert placeholders('{b} {a} {b} {{c}} {"x": 1}') == ["b", "a"]
