"""References that wire a workflow: ``inputs.NAME`` and ``steps.STEP.OUTPUT[.key...]``.

The build side validates references with :func:`parse_reference`; the engine resolves them with
:func:`resolve_reference`. Both use this one grammar.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = r"[^.\s]+"
_INPUT_RE = re.compile(rf"^inputs\.({_NAME})((?:\.{_KEY})*)$")
_STEP_RE = re.compile(rf"^steps\.({_NAME})\.({_NAME})((?:\.{_KEY})*)$")
DOLLAR_DIALECT_RE = re.compile(r"\$\{([^}]*)\}")
# A list index: ASCII digits only (``int("٣")`` is 3: keys with other digits are refused when
# parsed, and the walk does not take them either), and short enough for ``int``'s digit limit.
_INDEX_RE = re.compile(r"-?[0-9]{1,18}")


class ReferenceSyntaxError(ValueError):
    """The text is not a reference; the message says how to write one."""


class Reference(NamedTuple):
    """A parsed reference: ``source`` is ``"inputs"`` or ``"steps"``."""

    source: str
    name: str  # input name, or step id
    output: str | None  # the step's output name; None for inputs
    keys: tuple[str, ...]  # walk into objects (and list indexes) after that

    def __str__(self) -> str:
        head = (
            f"inputs.{self.name}" if self.source == "inputs" else f"steps.{self.name}.{self.output}"
        )
        return ".".join((head, *self.keys))


@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> Reference:
    """Parse ``text`` or raise :class:`ReferenceSyntaxError` with a fix-it message.

    Cached: a service parses the same few references on every run (a ``Reference`` is a tuple).
    """
    dollar = DOLLAR_DIALECT_RE.fullmatch(text.strip())
    if dollar:
        raise ReferenceSyntaxError(
            f"'{text}' uses the ${{...}} dialect, which is not supported: write '{dollar.group(1)}'"
        )
    match = _INPUT_RE.match(text)
    if match:
        return Reference("inputs", match.group(1), None, _split_keys(match.group(2)))
    match = _STEP_RE.match(text)
    if match:
        return Reference("steps", match.group(1), match.group(2), _split_keys(match.group(3)))
    raise ReferenceSyntaxError(
        f"'{text}' is not a reference: write 'inputs.NAME' or 'steps.STEP.OUTPUT[.key...]'"
        ' (a literal value must be a JSON number, boolean, null, or {"literal": ...})'
    )


def _split_keys(tail: str) -> tuple[str, ...]:
    keys = tuple(tail.split(".")[1:]) if tail else ()
    for key in keys:
        if any(ch.isdigit() and not ch.isascii() for ch in key):
            raise ReferenceSyntaxError(
                f"key {key!r} has digits other than 0-9: write a list index with ASCII digits"
                " (a non-ASCII digit would silently become one)"
            )
    return keys


def walk(value: Any, keys: tuple[str, ...], where: Any) -> Any:
    """Follow ``keys`` into nested objects and lists; ``where`` names the reference in errors
    (made into text only then: a service resolves every mapping of every run)."""
    for key in keys:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif (
            isinstance(value, list)
            and _INDEX_RE.fullmatch(key)
            and -len(value) <= int(key) < len(value)
        ):
            value = value[int(key)]
        else:
            raise LookupError(f"{where}: no key '{key}' in {type(value).__name__} value")
    return value


def _missing(ref: Reference) -> str:
    """Why ``ref``'s input or step output is not there (it has no keys to walk)."""
    if ref.source == "inputs":
        return f"{ref}: input '{ref.name}' was not given and has no default"
    return f"{ref}: step '{ref.name}' produced no output '{ref.output}'"


def resolve_reference(
    ref: Reference, inputs: dict[str, Any], step_outputs: dict[str, dict[str, Any]]
) -> Any:
    """Return the value ``ref`` points at; ``LookupError`` when it is not there at run time."""
    if ref.source == "inputs":
        if ref.name not in inputs:
            raise LookupError(_missing(ref))
        return walk(inputs[ref.name], ref.keys, ref) if ref.keys else inputs[ref.name]
    outputs = step_outputs.get(ref.name)
    if outputs is None or ref.output not in outputs:
        raise LookupError(_missing(ref))
    return walk(outputs[ref.output], ref.keys, ref) if ref.keys else outputs[ref.output]


def resolve_mapping_value(
    value: Any, inputs: dict[str, Any], step_outputs: dict[str, dict[str, Any]]
) -> Any:
    """Resolve one ``input_mapping`` value: a reference, ``{"literal": x}``, or a constant."""
    if isinstance(value, str):
        return resolve_reference(parse_reference(value), inputs, step_outputs)
    if isinstance(value, dict) and set(value) == {"literal"}:
        return value["literal"]
    return value


class MappingError(LookupError):
    """A value of a :class:`Mapping` is not there at run time; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


_INPUT, _STEP, _INPUT_WALK, _STEP_WALK, _CONSTANT, _TEXT = range(6)


class Mapping:
    """Named values, each a reference or a constant, fetched at every run: a step's
    ``input_mapping``, the workflow's outputs. Parsed once, so a run fetches a plain
    ``inputs.NAME`` or ``steps.STEP.OUTPUT`` with a subscript or two rather than a call of
    :func:`resolve_reference` (the calls were a tenth of a small run's engine CPU); a missing
    value goes through :func:`resolve_reference` for its message, a :class:`MappingError`.

    ``references``: parse every value as a reference (outputs); else values are as
    :func:`resolve_mapping_value` takes them (text that does not parse is reported at each run,
    by it, as before)."""

    __slots__ = ("_entries",)

    def __init__(self, items: Any, references: bool = False) -> None:
        entries: list[tuple[str, int, Any, Any, Reference | None]] = []
        for key, value in items:
            reference = None
            if references:
                reference = parse_reference(value)
            elif isinstance(value, str):
                try:
                    reference = parse_reference(value)
                except ValueError:
                    entries.append((key, _TEXT, value, None, None))
                    continue
            if reference is None:
                entries.append((key, _CONSTANT, resolve_mapping_value(value, {}, {}), None, None))
            elif reference.source == "inputs":
                kind = _INPUT_WALK if reference.keys else _INPUT
                entries.append((key, kind, reference.name, None, reference))
            else:
                kind = _STEP_WALK if reference.keys else _STEP
                entries.append((key, kind, reference.name, reference.output, reference))
        self._entries = tuple(entries)

    def resolve(
        self, inputs: dict[str, Any], step_outputs: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The values by name, in the order written."""
        values = {}
        for key, kind, first, second, reference in self._entries:
            try:
                if kind == _INPUT:
                    values[key] = inputs[first]
                elif kind == _STEP:
                    values[key] = step_outputs[first][second]
                elif kind == _CONSTANT:
                    values[key] = first
                elif kind == _STEP_WALK:
                    values[key] = walk(step_outputs[first][second], reference.keys, reference)  # type: ignore[union-attr]
                elif kind == _INPUT_WALK:
                    values[key] = walk(inputs[first], reference.keys, reference)  # type: ignore[union-attr]
                else:  # text that is no reference: its error, at each run
                    values[key] = resolve_mapping_value(first, inputs, step_outputs)
            except LookupError as error:  # a subscript's KeyError: the input or output is missing
                message = _missing(reference) if type(error) is KeyError else str(error)  # type: ignore[arg-type]
                raise MappingError(key, message) from None
        return values
