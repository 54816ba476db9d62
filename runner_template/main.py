"""The runner's command line: read inputs, run the embedded workflow, print JSON, exit.

Inputs come from, in this order: the first argument (a JSON object), ``--input-file FILE``
(``-`` for stdin), the ``INPUT`` environment variable, or stdin when it is not a terminal.
The outputs object goes to stdout as one JSON document; on failure stdout gets
``{"error": {"type", "message", "step"}}``, stderr a readable line, and the exit code tells the
class (see ``errors.py`` and ``docs/RUNNER.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from runner_template.engine import Engine
from runner_template.errors import EXIT_INTERNAL, EXIT_OK, InputError, RunnerError
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads

BUNDLE_NAME = "bundle.json"


def default_bundle_path() -> str:
    """``WORKFLOW_BUNDLE``, else ``bundle.json`` beside the program (script or compiled binary)."""
    configured = os.environ.get("WORKFLOW_BUNDLE")
    if configured:
        return configured
    return os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])), BUNDLE_NAME)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8-sig") as handle:
        return handle.read()


def load_bundle(path: str) -> dict[str, Any]:
    try:
        return bounded_loads(_read_text(path))
    except (JSONLimitError, UnicodeDecodeError) as error:
        raise InputError(f"the workflow bundle {path} is not acceptable: {error}") from error
    except OSError as error:
        raise InputError(f"cannot read the workflow bundle {path}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise InputError(f"the workflow bundle {path} is not valid JSON: {error}") from error


def _read_stdin() -> str:
    """stdin as UTF-8 whatever the locale (a scratch image has none, so it is "C")."""
    try:
        return sys.stdin.buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"inputs on stdin are not UTF-8 (byte {error.start})") from error


def parse_json_inputs(text: str, origin: str) -> Any:
    """Inputs as JSON, bounded (depth, finite numbers); empty text means ``{}``."""
    if not text.strip():
        return {}
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"inputs from {origin} are not UTF-8 text") from None
    try:
        return bounded_loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"inputs from {origin} are not valid JSON: {error.msg} at line {error.lineno}"
            f" column {error.colno}"
        ) from error
    except JSONLimitError as error:
        raise InputError(f"inputs from {origin}: {error.where}: {error.message}") from None


def read_inputs(args: argparse.Namespace) -> Any:
    if args.inputs is not None:
        return parse_json_inputs(args.inputs, "the argument")
    if args.input_file is not None:
        if args.input_file == "-":
            return parse_json_inputs(_read_stdin(), "stdin")
        try:
            text = _read_text(args.input_file)
        except OSError as error:
            raise InputError(
                f"cannot read input file {args.input_file}: {error.strerror}"
            ) from error
        return parse_json_inputs(text, args.input_file)
    if "INPUT" in os.environ:
        return parse_json_inputs(os.environ["INPUT"], "the INPUT variable")
    if sys.stdin is not None and not sys.stdin.isatty():
        return parse_json_inputs(_read_stdin(), "stdin")
    return {}


def describe(bundle: dict[str, Any]) -> dict[str, Any]:
    """What ``--describe`` prints: enough to call the workflow without reading its source."""
    workflow = bundle["workflow"]
    return {
        "workflow_id": workflow["id"],
        "version": workflow.get("version"),
        "description": workflow.get("description"),
        "inputs": workflow.get("inputs", {}),
        "outputs": sorted(workflow.get("outputs", {})),
        "steps": [step["step_id"] for step in workflow["steps"]],
        "models": sorted({t["model"] for t in bundle.get("tools", {}).values() if t.get("model")}),
        "machine": os.uname().machine,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow", description="Run the embedded workflow once and print its outputs as JSON."
    )
    parser.add_argument("inputs", nargs="?", help="inputs as a JSON object")
    parser.add_argument("-f", "--input-file", help="read inputs from a JSON file ('-' for stdin)")
    parser.add_argument("--endpoint", help="Ollama URL (default: OLLAMA_ENDPOINT, then the tool's)")
    parser.add_argument(
        "--provider",
        choices=("ollama", "openai"),
        help="the LLM server's API (default: LLM_PROVIDER, then the tool's, then ollama)",
    )
    parser.add_argument("--describe", action="store_true", help="print the workflow's interface")
    parser.add_argument("--stats", metavar="FILE", help="write per-step timings as JSON to FILE")
    return parser


def _utf8_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _utf8_streams()
    args = _parser().parse_args(argv)
    started = time.monotonic()
    engine: Engine | None = None
    try:
        bundle = load_bundle(default_bundle_path())
        if args.describe:
            print(json.dumps(describe(bundle), indent=2))
            return EXIT_OK
        engine = Engine(bundle, endpoint=args.endpoint, provider=args.provider)
        outputs = engine.run(read_inputs(args))
    except RunnerError as error:
        report_error(error)
        return error.exit_code
    except Exception as error:  # a bug: still one JSON error object and a documented code
        report_error(RunnerError(f"internal error: {error!r}"))
        if os.environ.get("WORKFLOW_DEBUG") == "1":
            raise
        return EXIT_INTERNAL
    finally:
        if args.stats and engine is not None:
            _write_stats(args.stats, engine, time.monotonic() - started)
    sys.stdout.write(json.dumps(outputs, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def report_error(error: RunnerError) -> None:
    """The error object on stdout (for programs), one readable line on stderr (for people)."""
    print(json.dumps(error.to_json(), ensure_ascii=False), flush=True)
    where = f" in step '{error.step}'" if error.step else ""
    print(f"error: {error.error_type}{where}: {error.message}", file=sys.stderr, flush=True)


def _write_stats(path: str, engine: Engine, total: float) -> None:
    data = {"total_seconds": total, "steps": {k: v.to_json() for k, v in engine.stats.items()}}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
