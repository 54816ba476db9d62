"""Input ``pattern`` checks in linear time: Python's regex syntax, no catastrophic backtracking.

``re`` backtracks: ``^(a+)+$`` against 35 characters runs for minutes and holds the GIL the whole
time, so one hostile input (or a hostile default at build time) stops a runner or a server.
Patterns here are parsed by ``re``'s own parser (the same syntax and the same syntax errors),
turned into a Thompson NFA whose single-character tests are ``re``'s own (so case folding
agrees, in and out of ASCII mode), and searched with a lazily built DFA: time is linear in the
text (each character costs one cached table lookup, or one NFA step the first time a state
meets it), memory is bounded by :data:`MAX_STATES` and :data:`MAX_CACHE`. A pattern whose DFA
would need more than :data:`MAX_DFA_STATES` states (``[ab]*a[ab]{40}c`` needs 2**41) is
refused when compiled: past that bound a text keeps meeting new states and the time per
megabyte grows a hundredfold.

Only a yes/no search is needed, which makes every construct of regular languages exact:
literals, classes, ``.``, alternation, groups, greedy and lazy repeats, anchors (``^ $ \\A \\Z
\\b \\B``), and the flags ``i m s x a``. What no linear-time engine can do is refused with a
clear message: backreferences, lookaround, conditionals, possessive repeats and atomic groups.
Standard library only: this module is compiled into every image.
"""

from __future__ import annotations

import re
import threading
from re import _constants as C
from re import _parser as sre_parse

MAX_PATTERN_LENGTH = 1000
MAX_STATES = 10_000
MAX_CACHE = 20_000
# Automaton states a pattern may need (found when it is compiled, on the characters it names
# and a sample of every class): above it, texts could keep meeting new states, each an NFA
# step instead of a table lookup, and a megabyte would take tens of seconds, not 0.3 s.
MAX_DFA_STATES = 2_000
_PROBE_WORK = 3_000_000  # closures x characters the probe may spend before refusing
# Characters standing for the classes no pattern names: letters, digits and spaces in and out
# of ASCII, the case-folding oddities (Kelvin sign, long s, dotted and dotless i), the ends.
_SAMPLES = (
    "aAzZ09_ \t\n\r!~\x00\x7f\xe9\xc9\u0663\u2003\u212a\u017f\u0130\u0131\u00df\uffff\U0010ffff"
)

# NFA node kinds
_CHAR, _SPLIT, _ASSERT, _MATCH, _EMPTY = range(5)

_UNSUPPORTED = {
    C.GROUPREF: "backreferences (\\1)",
    C.GROUPREF_EXISTS: "conditional groups (?(1)...)",
    C.ASSERT: "lookahead/lookbehind (?=...)",
    C.ASSERT_NOT: "negative lookahead/lookbehind (?!...)",
    C.POSSESSIVE_REPEAT: "possessive repeats (a++)",
    C.ATOMIC_GROUP: "atomic groups (?>...)",
}


class UnsupportedPattern(ValueError):
    """The pattern is valid for ``re`` but cannot be matched in linear time (or is too big)."""


def _is_word(ch: str, ascii_only: bool) -> bool:
    if ascii_only:
        return ch.isascii() and (ch.isalnum() or ch == "_")
    return ch.isalnum() or ch == "_"


def _case_variants(ch: str) -> set[str]:
    """Characters that may equal ``ch`` when case is ignored (for the probe's sample only:
    matching itself asks ``re``, see :meth:`_Builder.single`)."""
    forms = (ch, ch.lower(), ch.upper(), ch.casefold(), ch.title())
    return {form[0] for form in forms if form}


_CATEGORIES = {
    C.CATEGORY_DIGIT: r"\d",
    C.CATEGORY_NOT_DIGIT: r"\D",
    C.CATEGORY_SPACE: r"\s",
    C.CATEGORY_NOT_SPACE: r"\S",
    C.CATEGORY_WORD: r"\w",
    C.CATEGORY_NOT_WORD: r"\W",
}
_CHAR_FLAGS = C.SRE_FLAG_IGNORECASE | C.SRE_FLAG_ASCII  # what a one-character test depends on


def _escaped(code: int) -> str:
    return f"\\U{code:08x}"


def _anything(ch: str) -> bool:
    return True


def _not_newline(ch: str) -> bool:
    return ch != "\n"


class _Builder:
    """Builds the NFA as parallel lists (fast to index, cheap to hold)."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.arg: list[object] = []
        self.out1: list[int] = []
        self.out2: list[int] = []
        self.tests: dict[tuple, object] = {}  # one test per distinct element: a{40} has one
        self.seen_chars: set[str] = set()  # the characters the pattern names (for the probe)

    def node(self, kind: int, arg: object = None, out1: int = -1, out2: int = -1) -> int:
        if len(self.kind) >= MAX_STATES:
            raise UnsupportedPattern(
                f"the pattern expands to more than {MAX_STATES} states: use smaller repeat counts"
            )
        self.kind.append(kind)
        self.arg.append(arg)
        self.out1.append(out1)
        self.out2.append(out2)
        return len(self.kind) - 1

    # Each build method returns (entry node, list of dangling exits to patch).

    def patch(self, exits: list[tuple[int, int]], target: int) -> None:
        for node, slot in exits:
            if slot == 1:
                self.out1[node] = target
            else:
                self.out2[node] = target

    def sequence(self, items, flags: int):
        entry = self.node(_EMPTY)
        exits = [(entry, 1)]
        for op, av in items:
            sub_entry, sub_exits = self.item(op, av, flags)
            self.patch(exits, sub_entry)
            exits = sub_exits
        return entry, exits

    def char(self, test):
        node = self.node(_CHAR, test)
        return node, [(node, 1)]

    def item(self, op, av, flags: int):
        if op in _UNSUPPORTED:
            raise UnsupportedPattern(f"{_UNSUPPORTED[op]} cannot be matched in linear time")
        if op is C.LITERAL or op is C.NOT_LITERAL:
            self.seen_chars.add(chr(av))
            source = _escaped(av) if op is C.LITERAL else f"[^{_escaped(av)}]"
            return self.char(self.single(source, flags))
        if op is C.ANY:
            if flags & C.SRE_FLAG_DOTALL:
                return self.char(_anything)
            return self.char(_not_newline)
        if op is C.IN:
            return self.char(self.single(self.class_source(av), flags))
        if op is C.AT:
            node = self.node(_ASSERT, self.anchor(av, flags))
            return node, [(node, 1)]
        if op is C.BRANCH:
            return self.alternation(av[1], flags)
        if op is C.SUBPATTERN:
            _group, add_flags, del_flags, pattern = av
            return self.sequence(pattern, (flags | add_flags) & ~del_flags)
        if op is C.MAX_REPEAT or op is C.MIN_REPEAT:
            low, high, pattern = av
            return self.repeat(low, high, pattern, flags)
        raise UnsupportedPattern(f"unsupported regular expression element {op}")

    def single(self, source: str, flags: int):
        """The test whether one character matches ``source`` (a literal or a class), asked of
        ``re`` itself: one character cannot make it backtrack, and its answers are ``re``'s by
        construction (case folding in and out of ASCII mode: the Kelvin sign, the long s, the
        dotted capital I). One test per distinct element and flags: ``a{40}`` shares one."""
        key = (source, flags & _CHAR_FLAGS)
        test = self.tests.get(key)
        if test is None:
            match = re.compile(source, key[1]).match

            def test(ch: str, match=match) -> bool:
                return match(ch) is not None

            self.tests[key] = test
        return test

    def class_source(self, items) -> str:
        """``[...]`` source for a parsed class (every character written as ``\\U...``)."""
        parts = []
        for op, av in items:
            if op is C.NEGATE:
                parts.append("^")
            elif op is C.LITERAL:
                self.seen_chars.add(chr(av))
                parts.append(_escaped(av))
            elif op is C.RANGE:
                low, high = av
                for code in (low - 1, low, high, high + 1):
                    if 0 <= code <= 0x10FFFF:
                        self.seen_chars.add(chr(code))
                parts.append(f"{_escaped(low)}-{_escaped(high)}")
            elif op is C.CATEGORY and av in _CATEGORIES:
                parts.append(_CATEGORIES[av])
            else:
                raise UnsupportedPattern(f"unsupported character class element {op}")
        return "[" + "".join(parts) + "]"

    def anchor(self, name, flags: int):
        multiline = bool(flags & C.SRE_FLAG_MULTILINE)
        ascii_only = bool(flags & C.SRE_FLAG_ASCII)
        # An assertion sees (previous char or None, next char or None, next is the last char).
        if name is C.AT_BEGINNING:
            if multiline:
                return lambda prev, nxt, last: prev is None or prev == "\n"
            return lambda prev, nxt, last: prev is None
        if name is C.AT_BEGINNING_STRING:
            return lambda prev, nxt, last: prev is None
        if name is C.AT_END:
            if multiline:
                return lambda prev, nxt, last: nxt is None or nxt == "\n"
            return lambda prev, nxt, last: nxt is None or (nxt == "\n" and last)
        if name is C.AT_END_STRING:
            return lambda prev, nxt, last: nxt is None
        if name in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
            boundary = name is C.AT_BOUNDARY

            def test(prev, nxt, last):
                if prev is None and nxt is None:
                    return False  # as in re: neither \b nor \B matches an empty text
                before = prev is not None and _is_word(prev, ascii_only)
                after = nxt is not None and _is_word(nxt, ascii_only)
                return (before != after) == boundary

            return test
        raise UnsupportedPattern(f"unsupported anchor {name}")

    def alternation(self, branches, flags: int):
        """``a|b|c`` as a chain of splits: split(a, split(b, c))."""
        built = [self.sequence(branch, flags) for branch in branches]
        exits = [exit for _, branch_exits in built for exit in branch_exits]
        entry = built[-1][0]
        for branch_entry, _ in reversed(built[:-1]):
            entry = self.node(_SPLIT, None, branch_entry, entry)
        return entry, exits

    def repeat(self, low: int, high, pattern, flags: int):
        unbounded = high is C.MAXREPEAT
        if not unbounded and high < low:
            raise UnsupportedPattern("a repeat's maximum is below its minimum")
        entry = self.node(_EMPTY)
        exits = [(entry, 1)]
        for _ in range(low):
            sub_entry, sub_exits = self.sequence(pattern, flags)
            self.patch(exits, sub_entry)
            exits = sub_exits
        if unbounded:
            loop = self.node(_SPLIT)
            self.patch(exits, loop)
            sub_entry, sub_exits = self.sequence(pattern, flags)
            self.out1[loop] = sub_entry
            self.patch(sub_exits, loop)
            return entry, [(loop, 2)]
        optional_exits: list[tuple[int, int]] = []
        for _ in range(high - low):
            split = self.node(_SPLIT)
            self.patch(exits, split)
            sub_entry, sub_exits = self.sequence(pattern, flags)
            self.out1[split] = sub_entry
            optional_exits.append((split, 2))
            exits = sub_exits
        return entry, exits + optional_exits


class SafePattern:
    """A compiled pattern; :meth:`search` answers whether it matches anywhere in a text."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise UnsupportedPattern(f"patterns longer than {MAX_PATTERN_LENGTH} characters")
        parsed = sre_parse.parse(pattern)  # re.error on bad syntax, like re.compile
        if parsed.state.flags & C.SRE_FLAG_LOCALE:
            raise UnsupportedPattern("the LOCALE flag is not supported")
        builder = _Builder()
        start, exits = builder.sequence(list(parsed), parsed.state.flags)
        final = builder.node(_MATCH)
        builder.patch(exits, final)
        self.pattern = pattern
        self._kind, self._arg = builder.kind, builder.arg
        self._out1, self._out2 = builder.out1, builder.out2
        self._start = start
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._cache: dict[tuple, tuple[bool, int]] = {}
        self._probe(builder.seen_chars, builder.tests.values())
        # One search at a time per pattern: the cache and the state ids are shared (the GIL
        # gives no parallelism to lose, and a search is linear anyway).
        self._lock = threading.Lock()

    def _probe(self, named: set[str], tests) -> None:
        """Refuse a pattern whose automaton has more than :data:`MAX_DFA_STATES` states.

        The automaton is explored on one character of each kind the pattern tells apart (the
        characters it names, their cases, the ends of its ranges, and :data:`_SAMPLES`; two
        characters every test answers alike lead to the same states). ``[ab]*a[ab]{40}c`` needs
        2**41 states and is refused here, at validation time, not met at run time.
        """
        chars = set(_SAMPLES) | named
        chars |= {v for ch in named for v in _case_variants(ch)}
        tests = [test for test in tests if callable(test)]
        kinds: dict[tuple, str] = {}
        for ch in sorted(chars):
            kinds.setdefault((_context(ch), *(test(ch) for test in tests)), ch)
        alphabet = list(kinds.values())
        start = (self._intern(frozenset()), None)
        seen = {start}
        todo = [start]
        work = 0
        while todo:
            state, context = todo.pop()
            for ch in alphabet:
                work += len(self._sets[state]) + 1
                matched, following = self._step(state, _REPRESENTATIVE[context], ch, False)
                if matched or following < 0:
                    continue
                key = (following, _context(ch))
                if key not in seen:
                    seen.add(key)
                    todo.append(key)
                if len(self._sets) > MAX_DFA_STATES or work > _PROBE_WORK:
                    raise UnsupportedPattern(
                        f"the pattern needs more than {MAX_DFA_STATES} automaton states to be"
                        " matched in linear time (a repeat after an open-ended one, as in"
                        " [ab]*a[ab]{40}c): anchor it, or use smaller counts"
                    )
        self._cache.clear()
        self._ids.clear()
        self._sets.clear()

    def _closure(self, seeds, prev, nxt, last) -> tuple[bool, list[int]]:
        """Nodes reachable without reading a char; (reached MATCH, the CHAR nodes)."""
        kind, out1, out2, arg = self._kind, self._out1, self._out2, self._arg
        seen: set[int] = set()
        stack = list(seeds)
        chars: list[int] = []
        matched = False
        while stack:
            node = stack.pop()
            if node < 0 or node in seen:
                continue
            seen.add(node)
            k = kind[node]
            if k == _CHAR:
                chars.append(node)
            elif k == _EMPTY:
                stack.append(out1[node])
            elif k == _SPLIT:
                stack.append(out2[node])
                stack.append(out1[node])
            elif k == _ASSERT:
                if arg[node](prev, nxt, last):
                    stack.append(out1[node])
            else:
                matched = True
        return matched, chars

    def _intern(self, nodes: frozenset[int]) -> int:
        found = self._ids.get(nodes)
        if found is None:
            found = self._ids[nodes] = len(self._sets)
            self._sets.append(nodes)
        return found

    def _step(self, state: int, prev, nxt, last: bool) -> tuple[bool, int]:
        seeds = [*self._sets[state], self._start]
        matched, chars = self._closure(seeds, prev, nxt, last)
        if matched or nxt is None:
            return matched, -1
        arg, out1 = self._arg, self._out1
        following = frozenset(out1[node] for node in chars if arg[node](nxt))
        return False, self._intern(following)

    def _reset_if_full(self) -> None:
        if len(self._cache) > MAX_CACHE:
            self._cache.clear()
            self._ids.clear()
            self._sets.clear()

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in ``text`` (``re.search(...) is not None``)."""
        with self._lock:
            return self._search(text)

    def _search(self, text: str) -> bool:
        cache = self._cache
        self._reset_if_full()
        state = self._intern(frozenset())
        context = None
        last_index = len(text) - 1
        for index, ch in enumerate(text):
            key = (state, context, ch, index == last_index)
            step = cache.get(key)
            if step is None:
                nodes = self._sets[state]
                self._reset_if_full()
                state = self._intern(nodes)
                key = (state, context, ch, index == last_index)
                step = cache[key] = self._step(state, _REPRESENTATIVE[context], ch, key[3])
            if step[0]:
                return True
            state = step[1]
            context = _context(ch)
        matched, _ = self._step(state, _REPRESENTATIVE[context], None, False)
        return matched


def _context(ch: str) -> str:
    """The class of a previous char, which is all the anchors can tell apart."""
    if ch == "\n":
        return "\n"
    if _is_word(ch, True):
        return "ascii-word"
    if _is_word(ch, False):
        return "word"
    return "other"


# A char standing for each class when an anchor is evaluated.
_REPRESENTATIVE = {None: None, "\n": "\n", "ascii-word": "a", "word": "\u00e9", "other": " "}


def compile_pattern(pattern: str) -> SafePattern:
    """Compile ``pattern``; ``re.error`` for bad syntax, :class:`UnsupportedPattern` otherwise."""
    return SafePattern(pattern)
