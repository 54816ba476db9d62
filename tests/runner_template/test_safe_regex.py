"""The linear-time pattern matcher: the same answers as ``re.search``, without its blow-ups."""

import random
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner_template.safe_regex import (
    MAX_DFA_STATES,
    MAX_STATES,
    UnsupportedPattern,
    compile_pattern,
)

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


FLAGS = st.sampled_from(["", "(?i)", "(?m)", "(?s)", "(?a)", "(?im)", "(?x)", "(?ai)"])
TEXTS = st.text(alphabet="abxA \n1é_K\u212a\u017fsS", max_size=10)


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


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("(?ai)[a-z]", "\u212a"),  # Kelvin sign: k only outside ASCII mode
        ("(?ai)k", "\u212a"),
        ("(?ai)[a-z]", "\u017f"),  # long s
        ("(?ai)s", "\u017f"),
        ("(?ai)\u017f", "S"),
        ("(?ai)\u212a", "k"),
        ("(?ai)é", "É"),
        ("(?ai)[é-ê]", "É"),
        ("(?ai)[^a-z]", "\u212a"),
        ("(?i)[a-z]", "\u212a"),
        ("(?i)s", "\u017f"),
        ("(?ai)[\\w]", "\u212a"),
        ("(?a)(?i:[k])", "\u212a"),
    ],
)
def test_ascii_mode_with_ignore_case_agrees_with_re(pattern, text):
    assert compile_pattern(pattern).search(text) is (re.search(pattern, text) is not None)


def test_patterns_with_too_many_automaton_states_are_refused_when_compiled():
    started = time.monotonic()
    with pytest.raises(UnsupportedPattern, match=f"more than {MAX_DFA_STATES} automaton states"):
        compile_pattern("[ab]*a[ab]{40}c")
    assert time.monotonic() - started < 2


def test_the_largest_accepted_automata_keep_the_time_per_megabyte():
    text = "".join(random.Random(7).choice("ab") for _ in range(1_000_000))
    compiled = compile_pattern("[ab]*a[ab]{9}c")  # 1,025 states: accepted
    started = time.monotonic()
    assert compiled.search(text) is False
    assert time.monotonic() - started < 3  # about 0.3 s alone; 24 s before the bound


SYNTAX = [*"ab.|()*+?^$", "[ab]", "[^a]", r"\w", r"\d", r"\s", r"\b", "{2}", "{1,3}"]
FLAG_SETS = ["", "(?i)", "(?a)", "(?ai)", "(?ia)", "(?s)", "(?m)", "(?x)", "(?ai)(?s)"]
ODD_TEXT = "abAB kK\u212a sS\u017f éÉ \u0130\u0131i \n_1\u0663"


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FLAG_SETS),
    st.lists(
        st.sampled_from([*SYNTAX, "k", "s", "K", "\u212a", "\u017f", "é", "[a-z]"]), max_size=8
    ),
    st.lists(st.text(alphabet=ODD_TEXT, max_size=8), min_size=1, max_size=4),
)
def test_differential_fuzz_against_re_on_what_both_accept(flags, pieces, texts):
    """Random token soup, not just well-formed trees: whatever both engines accept, they must
    answer alike (case folding in and out of ASCII mode included)."""
    pattern = flags + "".join(pieces)
    try:
        expected = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return
    try:
        compiled = compile_pattern(pattern)
    except UnsupportedPattern:
        return
    for text in texts:
        assert compiled.search(text) == (expected.search(text) is not None), (pattern, text)
