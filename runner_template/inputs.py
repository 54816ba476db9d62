"""Check the caller's inputs against the workflow's ``inputs`` declaration and fill defaults."""

from __future__ import annotations

from typing import Any

from runner_template.errors import InputError
from runner_template.safe_regex import SafePattern, compile_pattern

_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


_PATTERNS: dict[str, SafePattern] = {}


def pattern_matches(pattern: str, text: str) -> bool:
    """``re.search`` semantics in linear time (see ``safe_regex``); compiled once per pattern."""
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = compile_pattern(pattern)
    return compiled.search(text)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(name: str, spec: dict[str, Any], value: Any) -> None:
    """Raise :class:`InputError` if ``value`` breaks ``spec``'s type, ``enum`` or ``pattern``."""
    expected = spec.get("type", "any")
    check = _TYPE_CHECKS.get(expected, _TYPE_CHECKS["any"])
    if not check(value):
        raise InputError(f"input '{name}' must be of type {expected}, got {_describe(value)}")
    if "enum" in spec and value not in spec["enum"]:
        allowed = ", ".join(repr(v) for v in spec["enum"])
        raise InputError(f"input '{name}' must be one of {allowed}, got {_describe(value)}")
    pattern = spec.get("pattern")
    if pattern is not None and isinstance(value, str) and not pattern_matches(pattern, value):
        raise InputError(f"input '{name}' does not match pattern {pattern!r}: {_describe(value)}")


# The ``isinstance`` classes of each declared type (None: anything), and whether a boolean
# passes (``True`` is an ``int`` to Python, not a number to JSON Schema).
_TYPE_CLASSES: dict[str, tuple[tuple[type, ...] | None, bool]] = {
    "string": ((str,), False),
    "number": ((int, float), False),
    "integer": ((int,), False),
    "boolean": ((bool,), True),
    "object": ((dict,), False),
    "array": ((list,), False),
}
_NO_DEFAULT = object()  # no default, no enum


class InputRules:
    """A workflow's ``inputs`` declaration, read once: :meth:`prepare` checks a run's inputs
    without looking each spec up again (a service checks every request's). The checks and
    their messages are :func:`check_value`'s, which says what is wrong when one fails."""

    def __init__(self, declared: dict[str, dict[str, Any]]) -> None:
        self._declared = declared
        self._names = frozenset(declared)
        rules = []
        for name, spec in declared.items():
            expected = spec.get("type", "any")
            # A type that is not a name (a bundle never has one) goes through check_value.
            classes, bools = (
                _TYPE_CLASSES.get(expected, (None, True))
                if isinstance(expected, str)
                else ((), False)
            )
            enum = spec.get("enum", _NO_DEFAULT)
            default = spec.get("default", _NO_DEFAULT)
            required = bool(spec.get("required", False))
            rules.append((name, spec, classes, bools, enum, spec.get("pattern"), default, required))
        self._rules = tuple(rules)

    def prepare(self, given: Any) -> dict[str, Any]:
        """Return the inputs the steps see: ``given`` checked, with defaults for missing ones.

        Inputs that the workflow does not declare are refused: a typo in a name would otherwise
        be silently ignored while the declared input falls back to its default.
        """
        if not isinstance(given, dict):
            raise InputError(f"inputs must be a JSON object, got {type(given).__name__}")
        if not self._names.issuperset(given):
            declared = self._declared
            unknown = sorted(set(given) - set(declared))
            known = ", ".join(sorted(declared)) or "none"
            shown = ", ".join(_describe(name) for name in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise InputError(f"unknown input(s): {shown}{more} (declared: {known})")
        prepared: dict[str, Any] = {}
        for name, spec, classes, bools, enum, pattern, default, required in self._rules:
            if name in given:
                value = given[name]
                if (
                    (
                        classes is not None
                        and not (
                            isinstance(value, classes) and (bools or value.__class__ is not bool)
                        )
                    )
                    or (enum is not _NO_DEFAULT and value not in enum)
                    or pattern is not None
                ):
                    check_value(name, spec, value)  # raises, unless a pattern matches
                prepared[name] = value
            elif default is not _NO_DEFAULT:
                prepared[name] = default
            elif required:
                raise InputError(f"missing required input '{name}'")
        return prepared


def prepare_inputs(declared: dict[str, dict[str, Any]], given: Any) -> dict[str, Any]:
    """:meth:`InputRules.prepare` of ``declared`` (made for this one call)."""
    return InputRules(declared).prepare(given)
