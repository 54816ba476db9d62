"""JSON from untrusted hands, parsed with bounds: nesting depth, finite numbers, sane text.

Workflow files, tool files, inputs on stdin and HTTP bodies all come from somebody else. The
standard ``json`` module accepts ``NaN`` and ``Infinity`` (not JSON, and a ``NaN`` timeout never
expires), raises ``RecursionError`` on deeply nested documents, and keeps lone surrogates that
later fail to encode; an integer of more than 4,300 digits raises a bare ``ValueError``
(Python's int-to-str limit) where it is parsed, or later where it is printed. :func:`loads`
refuses all four with a :class:`JSONLimitError` whose message says what and where, so every
caller can turn it into its own one-line error; :func:`check_tree` refuses such integers made
by code (a tool's result) before they reach a JSON writer.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from typing import Any

MAX_DEPTH = 100
MAX_INT_DIGITS = 4300  # Python's default int-to-str limit (sys.get_int_max_str_digits())
# An integer of up to this many bits has at most MAX_INT_DIGITS digits: no need to print it.
_SAFE_INT_BITS = int(MAX_INT_DIGITS * 3.32)


class JSONLimitError(ValueError):
    """The text is JSON-like but outside what this program accepts (``where``: a JSON path)."""

    def __init__(self, message: str, where: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def _reject_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number (use a finite number or null)")


class _HugeInt:
    """Stands in for an integer too long to convert, until :func:`check_tree` finds it.

    The parser calls ``parse_int`` without saying where the number is; raising there could only
    name ``$``. Keeping a marker lets the walk that follows name the number's own JSON path."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


# Bumped by a parser hook that made a value check_tree must find (a marked integer, a float too
# large to be finite): loads compares it before and after a parse (see there). A count, since
# its ``next`` is one step under the GIL whichever threads parse at once.
_MARKS = itertools.count()


def _parse_int(text: str) -> int | _HugeInt:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        next(_MARKS)
        return _HugeInt(digits)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a JSON number, but not one we take
        next(_MARKS)
    return value


def _too_long(number: int) -> bool:
    if abs(number).bit_length() <= _SAFE_INT_BITS:
        return False
    try:
        return len(str(abs(number))) > MAX_INT_DIGITS
    except ValueError:  # beyond the interpreter's own limit
        return True


def _path(where: tuple | None) -> str:
    """``$.a[0].b`` from a path kept as nested pairs ``((parent, key), ...)``, root ``None``."""
    parts: list[str | int] = []
    while where is not None:
        where, part = where
        parts.append(part)
    text = "$"
    for part in reversed(parts):
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _first(where: tuple | None, count: int) -> tuple | None:
    """The path cut to its first ``count`` parts (a deep error names where it went deep)."""
    chain = []
    while where is not None:
        chain.append(where)
        where = where[0]
    cut = None
    for _parent, part in reversed(chain[-count:] if count else []):
        cut = (cut, part)
    return cut


def check_tree(value: Any, *, max_depth: int = MAX_DEPTH, text_checks: bool = False) -> None:
    """Walk ``value`` (iteratively: no recursion to exhaust) and enforce the bounds.

    ``text_checks`` also refuses strings and keys with lone surrogates, which cannot be written
    as UTF-8 (files we generate from the data must be writable). Each node's JSON path is kept
    as a pair (parent's path, key), made into text only for an error: a service checks every
    request body and every result. A container's plain strings, numbers, booleans and nulls
    are checked where they are met, without a trip through the stack (most of a small
    document's nodes).
    """
    stack: list[tuple[Any, int, tuple | None]] = [(value, 0, None)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict):
            is_dict, pairs = True, item.items()
        elif isinstance(item, list):
            is_dict, pairs = False, enumerate(item)
        else:
            _check_leaf(item, where, text_checks)
            continue
        if depth >= max_depth:
            raise JSONLimitError(
                f"nested more than {max_depth} levels deep", _path(_first(where, 8))
            )
        for key, child in pairs:
            if is_dict and text_checks and not (type(key) is str and key.isascii()):
                _check_text(key, (where, key))
            kind = type(child)
            if kind is str:
                if text_checks and not child.isascii():  # a lone surrogate is not ASCII
                    _check_text(child, (where, key))
            elif kind is int:
                if child.bit_length() > _SAFE_INT_BITS:
                    _check_leaf(child, (where, key), text_checks)
            elif kind is float:
                if not math.isfinite(child):
                    raise JSONLimitError("not a finite number", _path((where, key)))
            elif child is not None and kind is not bool:
                stack.append((child, depth + 1, (where, key)))


def _check_leaf(item: Any, where: tuple | None, text_checks: bool) -> None:
    """The bounds of a value that is not a dict or a list."""
    if isinstance(item, float) and not math.isfinite(item):
        raise JSONLimitError("not a finite number", _path(where))
    if isinstance(item, _HugeInt):
        message = f"an integer of {item.digits} digits (at most {MAX_INT_DIGITS})"
        raise JSONLimitError(message, _path(where))
    if isinstance(item, int) and _too_long(item):
        raise JSONLimitError(f"an integer of more than {MAX_INT_DIGITS} digits", _path(where))
    if text_checks and isinstance(item, str):
        _check_text(item, where)


def _check_text(text: str, where: tuple | None) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise JSONLimitError(
            f"contains a lone surrogate (\\u{code:04x}), which is not valid Unicode",
            _path(where),
        ) from None


# One decoder for every call: ``json.loads`` with hooks builds a decoder and its scanner each
# time, which was most of the cost of parsing a small request body. The plain one leaves
# integers to C: the interpreter's own digit limit (at most MAX_INT_DIGITS) refuses a long one
# there, before any conversion, and the text is then read again with the marker hook
# (_parse_int, a Python call per integer) to name where it is.
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
)
_SCAN = _DECODER.scan_once
_PLAIN_SCAN = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float).scan_once
_SPACE = json.decoder.WHITESPACE.match
_int_limit = sys.get_int_max_str_digits


def loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_DEPTH,
    text_checks: bool = False,
    object_pairs_hook=None,
) -> Any:
    """``json.loads`` with the bounds of this module; syntax errors stay ``JSONDecodeError``.

    The walk of :func:`check_tree` is left out when the text shows that it would find nothing
    (most requests and tool outputs, a third of their JSON's cost): no hook marked a value
    (an integer too long, a float too large), fewer brackets than ``max_depth``, and for
    ``text_checks`` ASCII text without a ``\\u`` escape (a lone surrogate needs one of the two).
    """
    mark = next(_MARKS)
    try:
        if object_pairs_hook is not None:
            value = json.loads(
                text,
                parse_constant=_reject_constant,
                parse_int=_parse_int,
                parse_float=_parse_float,
                object_pairs_hook=object_pairs_hook,
            )
            mark = -2  # the walk is never left out for these
        else:  # what json.loads does with the hooks above (inlined: three Python calls)
            if isinstance(text, bytes | bytearray):
                text = text.decode(json.detect_encoding(text), "surrogatepass")
            elif not isinstance(text, str):
                raise TypeError(f"the JSON object must be str or bytes, not {type(text).__name__}")
            if text.startswith("\ufeff"):
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            start = _SPACE(text, 0).end()
            try:
                if 0 < _int_limit() <= MAX_INT_DIGITS:  # a tool may have changed it
                    try:
                        value, end = _PLAIN_SCAN(text, start)
                    except (JSONLimitError, json.JSONDecodeError):  # NaN, or not JSON
                        raise
                    except ValueError:  # an integer over the limit: read again, marked
                        value, end = _SCAN(text, start)
                    if not 0 < _int_limit() <= MAX_INT_DIGITS:
                        # A tool's thread lifted the limit during the scan (the float hook
                        # lets other threads run): an integer may have come through unmarked.
                        mark = -2
                else:
                    value, end = _SCAN(text, start)
            except StopIteration as error:
                raise json.JSONDecodeError("Expecting value", text, error.value) from None
            end = _SPACE(text, end).end()
            if end != len(text):
                raise json.JSONDecodeError("Extra data", text, end)
    except RecursionError:
        raise JSONLimitError(f"nested more than {max_depth} levels deep") from None
    if (
        next(_MARKS) != mark + 1  # marked here (or in another thread meanwhile: walk anyway)
        or text.count("[") + text.count("{") > max_depth
        or (text_checks and not (text.isascii() and "\\u" not in text))
    ):
        check_tree(value, max_depth=max_depth, text_checks=text_checks)
    return value


# ``json.dumps`` with an argument builds an encoder per call; this one is made once.
ENCODER = json.JSONEncoder(ensure_ascii=False)


def _c_encoder():
    """ENCODER's C writer, made once: ``JSONEncoder.encode`` makes one per call (its
    ``iterencode``), about a third of writing a small object. Without the circular check
    (its ``markers`` dict must be fresh per call): a value nested too deep, a circular one
    included, is a ``RecursionError`` from C instead. None without ``_json``."""
    make = json.encoder.c_make_encoder
    if make is None:
        return None
    e = ENCODER
    return make(
        None, e.default, json.encoder.encode_basestring, e.indent, e.key_separator,
        e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan,
    )  # fmt: skip


_C_ENCODER = _c_encoder()


def encode(value: Any) -> str:
    """``ENCODER.encode(value)``; a value nested too deep for it (a circular one) is a
    ``ValueError``, as the standard library's circular check says."""
    if _C_ENCODER is None:
        return ENCODER.encode(value)
    try:
        return "".join(_C_ENCODER(value, 0))
    except RecursionError:
        raise ValueError("nested too deep or circular") from None


def dumps(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``; a value JSON cannot write (an integer of more
    than 4,300 digits, a circular list) is a :class:`JSONLimitError`, not a bare ``ValueError``."""
    try:
        return encode(value)
    except ValueError as error:
        reason = str(error).split(";")[0]
        raise JSONLimitError(f"a value cannot be written as JSON: {reason}") from None
