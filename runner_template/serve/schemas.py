"""What the service says about itself: JSON Schemas of inputs and outputs, OpenAPI 3.0."""

from __future__ import annotations

from typing import Any


def _json_type(declared: str | None) -> dict[str, Any]:
    if declared in (None, "any"):
        return {}
    return {"type": declared}


def inputs_schema(workflow: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of the workflow's inputs object (what ``/invoke`` accepts)."""
    properties: dict[str, Any] = {}
    required = []
    for name, spec in (workflow.get("inputs") or {}).items():
        prop = _json_type(spec.get("type"))
        for key in ("enum", "pattern", "default", "description"):
            if key in spec:
                prop[key] = spec[key]
        properties[name] = prop
        if spec.get("required") and "default" not in spec:
            required.append(name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def outputs_schema(workflow: dict[str, Any]) -> dict[str, Any]:
    names = sorted(workflow.get("outputs") or {}) or ["output"]
    return {"type": "object", "properties": {name: {} for name in names}}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "step": {"type": "string", "nullable": True},
            },
        }
    },
}


def openapi(workflow: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 description of the service, for clients and for property tests."""
    inputs = {"$ref": "#/components/schemas/Inputs"}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(code): {"description": "error", **error} for code in codes}

    run_errors = errors(400, 411, 413, 415, 429, 500, 502, 503, 504)
    body = {"required": True, "content": {"application/json": {"schema": inputs}}}
    hook = {
        "type": "object",
        "required": ["inputs", "callback_url"],
        "properties": {
            "inputs": inputs,
            "callback_url": {"type": "string", "format": "uri"},
            "run_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        },
        "additionalProperties": False,
    }
    run_id = [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    chat = {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {"type": "string", "enum": [str(workflow.get("id") or "workflow")]},
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                        "content": {"type": "string"},
                    },
                },
            },
        },
    }
    ok_json = {"content": {"application/json": {"schema": {"type": "object"}}}}
    extra_paths = {
        "/batch": {
            "post": {
                "summary": "Run a list of inputs (under the same -j bound); results in order",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": inputs, "minItems": 1}
                        }
                    },
                },
                "responses": {
                    "200": {"description": "one result or error object per input", **ok_json},
                    **errors(400, 411, 413, 415, 503),
                },
            }
        },
        "/runs/{run_id}/cancel": {
            "post": {
                "summary": "Cancel a run started by /hooks/run",
                "parameters": run_id,
                "responses": {
                    "202": {"description": "canceling", **ok_json},
                    **errors(404, 409),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "OpenAI-compatible: the workflow as a model",
                "responses": {"200": {"description": "models", **ok_json}},
            }
        },
        "/v1/chat/completions": {
            "post": {
                "summary": "OpenAI-compatible chat completion: the last user message is the input",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": chat}},
                },
                "responses": {
                    "200": {
                        "description": "a chat completion, or its chunks as Server-Sent Events",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **{
                        str(code): {"description": "an OpenAI error object", **ok_json}
                        for code in (400, 404, 409, 411, 413, 415, 429, 500, 502, 503, 504)
                    },
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"workflow {workflow.get('id')}",
            "version": str(workflow.get("version") or "0"),
            "description": workflow.get("description") or "A docker-workflow workflow service.",
        },
        "paths": {
            "/invoke": {
                "post": {
                    "summary": "Run the workflow once",
                    "requestBody": body,
                    "responses": {
                        "200": {
                            "description": "the outputs",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["outputs"],
                                        "properties": {
                                            "outputs": {"$ref": "#/components/schemas/Outputs"}
                                        },
                                    }
                                }
                            },
                        },
                        **run_errors,
                    },
                }
            },
            "/stream": {
                "post": {
                    "summary": "Run the workflow, streaming events",
                    "requestBody": body,
                    "responses": {
                        "200": {
                            "description": "events",
                            "content": {
                                "text/event-stream": {"schema": {"type": "string"}},
                                "application/x-ndjson": {"schema": {"type": "string"}},
                            },
                        },
                        **errors(400, 411, 413, 415, 429),
                    },
                }
            },
            "/hooks/run": {
                "post": {
                    "summary": "Start a run; its result is POSTed to callback_url",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": hook}},
                    },
                    "responses": {
                        "202": {
                            "description": "accepted",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "run_id": {"type": "string"},
                                            "status_url": {"type": "string"},
                                            "created": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "200": {"description": "a run with this run_id exists already"},
                        **errors(400, 411, 413, 415, 429),
                    },
                }
            },
            "/runs/{run_id}": {
                "get": {
                    "summary": "The state of a run started by /hooks/run",
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the run",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **errors(404),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "The LLM server answers and has the workflow's models",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/schema": {
                "get": {
                    "summary": "JSON Schema of inputs and outputs",
                    "responses": {"200": {"description": "schemas"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
            **extra_paths,
        },
        "components": {
            "schemas": {
                "Inputs": inputs_schema(workflow),
                "Outputs": outputs_schema(workflow),
                "Error": ERROR_SCHEMA,
            }
        },
    }
