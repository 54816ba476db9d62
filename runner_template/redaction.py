"""The one redaction of the engine: no credential leaves in text the engine produces.

Secrets reach the engine two ways: inside URLs (``user:password@`` given at run time) and as
values it reads from the environment (``OLLAMA_API_KEY``, a tool's ``api_key_env``, every
``${VAR}`` an API tool expands). Both can end up in a message: an API tool's URL with
``?apikey=${API_TOKEN}`` that answers 404, a header ``http.client`` refuses, a retry line.
So every message passes :func:`redact` (``RunnerError`` and ``HTTPFailure`` do it when they
are made), which

* replaces the user information of every URL in the text (``scheme://...@``) by ``***``; the
  user information runs to the last ``@`` before white space, so a password with ``#``, ``/``
  or ``?`` (which ``urlsplit`` would cut short) is hidden too, and nothing here parses ports;
* replaces every value registered with :func:`register_secret` by ``***``, also in its
  URL-encoded, ``repr`` and JSON forms (messages quote values all three ways).

API replies that echo a secret back (a service that repeats the URL it was called with) are
data, not messages: :func:`hide_secrets` replaces the secrets in them and nothing else.

Values shorter than :data:`MIN_SECRET_LENGTH` are not registered: hiding every ``1`` or ``eu``
would garble messages, and so short a value protects nothing.
"""

from __future__ import annotations

import json
import re
import threading

MIN_SECRET_LENGTH = 4
MASK = "***"
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Hide ``value`` (and its URL-encoded and escaped forms) in every message from now on."""
    global _ordered
    if len(value) < MIN_SECRET_LENGTH:
        return
    from urllib.parse import quote  # here, not at start: it imports ipaddress, 2 ms of a start

    forms = {value, quote(value, safe=""), quote(value), repr(value)[1:-1], json.dumps(value)[1:-1]}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(form for form in forms if len(form) >= MIN_SECRET_LENGTH)
        # Longest first: a secret that contains another is replaced whole.
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def hide_secrets(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (and nothing else changed:
    for data, such as an API's reply that echoes the URL it was called with)."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with URL user information and every registered secret replaced by ``***``."""
    return hide_secrets(_USERINFO.sub(lambda match: match.group(1) + MASK + "@", text))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with control characters (CR, LF, NUL, ...) written as escapes: one line, safe
    to print to a terminal or a log."""
    return _CONTROL.sub(lambda match: repr(match.group(0))[1:-1], text)


def clean(text: str) -> str:
    """What every message goes through: redacted, then on one line."""
    return one_line(redact(text))
