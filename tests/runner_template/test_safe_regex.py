"""The linear-time pattern matcher: the same answers as ``re.search``, without its blow-ups."""

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner_template.safe_regex import MAX_STATES, UnsupportedPattern, compile_pattern

ATOMS = [
    "a",
    "b",
    ".",
    "[ab]",
    "[^a]",
    r"\d",
    r"\w",
    r"\s",
    r"\W",
    r"\b",
    r"\B",
    "^",
    "$",
    r"\A",
    r"\Z",
    "\n",
    "é",
    "A",
    "[a-c]",
    "x",
]
REPEATS = ["*", "+", "?", "*?", "+?", "{2}", "{1,3}", "{0,2}?", "{2,}"]


@st.composite
def patterns(draw, depth=0):
    choice = draw(st.integers(0, 4 if depth < 3 else 0))
    if choice == 0:
        return draw(st.sampled_from(ATOMS))
    if choice == 1:
        return draw(patterns(depth + 1)) + draw(patterns(depth + 1))
    if choice == 2:
        return f"({draw(patterns(depth + 1))}|{draw(patterns(depth + 1))})"
    if choice == 3:
        return f"(?:{draw(patterns(depth + 1))}){draw(st.sampled_from(REPEATS))}"
    return f"(?i:{draw(patterns(depth + 1))})"


FLAGS = st.sampled_from(["", "(?i)", "(?m)", "(?s)", "(?a)", "(?im)", "(?x)"])
TEXTS = st.text(alphabet="abxA \n1é_K", max_size=10)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FLAGS, patterns(), st.lists(TEXTS, min_size=1, max_size=5))
def test_same_answers_as_re(flags, body, texts):
    pattern = flags + body
    try:
        expected = re.compile(pattern)
    except re.error:
        return
    compiled = compile_pattern(pattern)
    for text in texts:
        assert compiled.search(text) == (expected.search(text) is not None), (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"^(a+)+$", "a" * 35 + "!"),
        (r"^(a|a)*$", "a" * 40 + "b"),
        (r"(x+x+)+y", "x" * 5000),
        (r"^\s*.*\s*$x", " " * 20000),
    ],
)
def test_catastrophic_patterns_answer_at_once(pattern, text):
    started = time.monotonic()
    assert compile_pattern(pattern).search(text) is False
    assert time.monotonic() - started < 2


def test_a_megabyte_is_linear():
    text = "https://example.com/" + "a" * 1_000_000
    started = time.monotonic()
    assert compile_pattern(r"^https?://[^\s/$.?#].[^\s]*$").search(text)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"(a)\1", "backreferences"),
        (r"a(?=b)", "lookahead"),
        (r"(?<!a)b", "negative"),
        (r"a++", "possessive"),
        (r"(?>a)", "atomic"),
        (r"(a)?(?(1)b|c)", "conditional"),
    ],
)
def test_what_needs_backtracking_is_refused_clearly(pattern, what):
    with pytest.raises(UnsupportedPattern, match=what):
        compile_pattern(pattern)


def test_size_bounds():
    with pytest.raises(UnsupportedPattern, match="states"):
        compile_pattern("(a{100}){200}")
    assert MAX_STATES >= 1000
    with pytest.raises(UnsupportedPattern, match="longer than"):
        compile_pattern("a" * 5000)
    with pytest.raises(re.error):
        compile_pattern("(unclosed")


def test_ignore_case_beyond_ascii():
    assert compile_pattern("(?i)k").search("\u212a")  # the Kelvin sign, as re does
    assert compile_pattern("(?i)straße").search("STRASSE") is bool(
        re.search("(?i)straße", "STRASSE")
    )
