"""``type: api`` tools: one HTTP call made by the engine, described by the tool's ``api_spec``.

An ``api_spec`` has ``method`` (default GET), ``url`` (``{name}`` placeholders take the step's
mapped values, URL-encoded), ``headers`` (values may name environment variables as
``${API_TOKEN}``, read in the container at run time and never stored in the bundle), and
``body`` (a JSON template: a string that is exactly ``"{name}"`` becomes that value with its
type, other strings are filled as text; without ``body``, POST/PUT/PATCH send the mapped values
as a JSON object). The reply is JSON when it parses, else text; a non-2xx status is a tool
failure naming the status; 5xx answers and connection faults are retried a bounded number of
times within the step's deadline. Every expanded ``${VAR}`` value is a secret from then on: no
message shows it (``runner_template/redaction.py``); a header with CR, LF or NUL is refused
before anything is sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from runner_template import http_client
from runner_template.errors import StepTimeoutError, ToolError
from runner_template.jsonsafe import JSONLimitError, dumps
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.redaction import hide_secrets
from runner_template.templates import format_value, placeholders, render

METHODS_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")


def _fill_url(template: str, values: dict[str, Any]) -> str:
    encoded = {name: quote(format_value(values[name]), safe="") for name in values}
    return render(template, encoded)


def fill_body(template: Any, values: dict[str, Any]) -> Any:
    """The JSON body: ``"{name}"`` alone keeps the value's type, other strings are text."""
    if isinstance(template, str):
        names = placeholders(template)
        if len(names) == 1 and template == "{" + names[0] + "}" and names[0] in values:
            return values[names[0]]
        return render(template, values)
    if isinstance(template, dict):
        return {key: fill_body(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [fill_body(item, values) for item in template]
    return template


def call_api(
    tool_id: str, spec: dict[str, Any], values: dict[str, Any], deadline: float, step: str
) -> Any:
    """Make the call ``spec`` describes with ``values``; return the decoded reply."""
    method = str(spec.get("method", "GET")).upper()
    what = f"tool '{tool_id}'"
    try:
        url = http_client.expand_env(_fill_url(spec["url"], values), what)
        headers = {
            name: http_client.expand_env(str(value), f"{what}, header {name}")
            for name, value in (spec.get("headers") or {}).items()
        }
    except KeyError as error:
        raise ToolError(str(error.args[0]), step) from None
    body = None
    try:
        if "body" in spec:
            body = dumps(fill_body(spec["body"], values)).encode("utf-8")
        elif method in METHODS_WITH_BODY and values:
            body = dumps(values).encode("utf-8")
    except JSONLimitError as error:
        raise ToolError(f"{what}: the request body: {error.message}", step) from None
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    try:
        reply = http_client.request(method, url, deadline=deadline, body=body, headers=headers)
    except http_client.TimedOut as failure:
        raise StepTimeoutError(f"{what}: {failure.message}", step) from None
    except http_client.HTTPFailure as failure:
        raise ToolError(f"{what}: {url}: {failure.message}", step) from None
    text = hide_secrets(reply.text())  # an API that echoes its URL must not return the key
    if not 200 <= reply.status < 300:
        # ToolError redacts: the URL may carry an expanded ${API_TOKEN}.
        raise ToolError(f"{what}: {url} answered HTTP {reply.status}: {text[:200]}", step)
    if not text.strip():
        return None
    try:
        return bounded_loads(text)
    except JSONLimitError as error:
        raise ToolError(
            f"{what}: the reply is out of bounds: {error.where}: {error.message}",
            step,
        ) from None
    except ValueError:  # not JSON: the reply is text
        return text
