"""The runner's command line: read inputs, run the embedded workflow, print JSON, exit.

Inputs come from, in this order: the first argument (a JSON object), ``--input-file FILE``
(``-`` for stdin), the ``INPUT`` environment variable, or stdin when it is not a terminal.
The outputs object goes to stdout as one JSON document; on failure stdout gets
``{"error": {"type", "message", "step"}}``, stderr a readable line, and the exit code tells the
class (see ``errors.py`` and ``docs/RUNNER.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from runner_template.bundle_format import BUNDLE_FILE, format_problem
from runner_template.engine import Engine, RunHandle
from runner_template.errors import EXIT_INTERNAL, EXIT_OK, InputError, RunnerError
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads
from runner_template.layer_imports import install as install_layer_imports


def default_bundle_path() -> str:
    """``WORKFLOW_BUNDLE``, else ``bundle.json`` beside the program (script or compiled binary)."""
    configured = os.environ.get("WORKFLOW_BUNDLE")
    if configured:
        return configured
    return os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])), BUNDLE_FILE)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8-sig") as handle:
        return handle.read()


def load_bundle(path: str) -> dict[str, Any]:
    try:
        bundle = bounded_loads(_read_text(path))
    except (JSONLimitError, UnicodeDecodeError) as error:
        raise InputError(f"the workflow bundle {path} is not acceptable: {error}") from error
    except OSError as error:
        raise InputError(f"cannot read the workflow bundle {path}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise InputError(f"the workflow bundle {path} is not valid JSON: {error}") from error
    problem = format_problem(bundle)
    if problem:
        raise InputError(f"the workflow bundle {path} cannot be read: {problem}")
    return bundle


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
    batch = parser.add_argument_group("batch mode")
    batch.add_argument(
        "--batch", action="store_true", help="JSON Lines of inputs in, one result line each out"
    )
    batch.add_argument(
        "-j",
        "--jobs",
        type=int,
        help="inputs (--batch, default 1) or requests (--serve, default 4) run at once",
    )
    batch.add_argument("--output-file", help="append result lines to this file, not stdout")
    batch.add_argument(
        "--indexed", action="store_true", help='input lines are {"index": N, "inputs": {...}}'
    )
    batch.add_argument(
        "--shard-env",
        metavar="VAR",
        help="'{shard}' in --input-file and --output-file is this variable's value"
        " (a Kubernetes completion index)",
    )
    serve = parser.add_argument_group("serve mode")
    serve.add_argument("--serve", action="store_true", help="serve the workflow over HTTP")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--max-body", type=int, default=8 * 1024 * 1024, help="bytes (413 over)")
    serve.add_argument(
        "--request-timeout", type=float, default=300.0, help="seconds per run (504 over)"
    )
    serve.add_argument(
        "--queue-wait", type=float, default=5.0, help="seconds to wait for a free run (then 429)"
    )
    serve.add_argument(
        "--grace", type=float, default=20.0, help="seconds running requests get on SIGTERM"
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="seconds a request's headers and body may take to arrive, all together",
    )
    serve.add_argument(
        "--auth-token-env",
        metavar="NAME",
        help="require 'Authorization: Bearer' with the token in this variable (not /healthz)",
    )
    serve.add_argument(
        "--playground",
        action="store_true",
        help="serve the workflow's page at /playground/ (it runs through /stream)",
    )
    parser.add_argument(
        "--stream", action="store_true", help="print the run's events as NDJSON while it goes"
    )
    return parser


def _utf8_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="backslashreplace")


EXIT_SIGNAL_BASE = 128  # a run ended by signal N exits 128 + N (the shell's convention)


class Interrupted(BaseException):
    """A signal ended the run. Not an ``Exception``: no handler on the way may keep it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def _signal_handlers() -> None:
    """SIGTERM and SIGHUP end a run or a batch the way Ctrl-C does: one line, exit 128 + N.
    (Serve mode installs its own: it stops gracefully.)"""
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _raise_interrupted)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a signal or an unwritable stdout is one line on stderr."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except Interrupted as stop:
        return _interrupted(stop.signum)
    except OSError as error:  # stdout is a closed pipe or a full disk
        _quiet_stdout()
        print(f"error: cannot write the results: {error.strerror or error}", file=sys.stderr)
        return EXIT_INTERNAL


def _interrupted(signum: int) -> int:
    name = signal.Signals(signum).name
    with contextlib.suppress(OSError):  # stderr may be gone too
        print(f"workflow: interrupted by {name}", file=sys.stderr, flush=True)
    return EXIT_SIGNAL_BASE + signum


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _main(argv: list[str] | None) -> int:
    _utf8_streams()
    install_layer_imports()  # the tools' modules beside the shared program
    args = _parser().parse_args(argv)
    if not args.serve:
        _signal_handlers()
    started = time.monotonic()
    engine: Engine | None = None
    handle = RunHandle()
    try:
        bundle = load_bundle(default_bundle_path())
        if args.describe:
            print(json.dumps(describe(bundle), indent=2))
            return EXIT_OK
        if args.batch:
            return _batch(args, bundle)
        if args.serve:
            return _serve(args, bundle)
        engine = Engine(bundle, endpoint=args.endpoint, provider=args.provider)
        inputs = read_inputs(args)
        outputs = engine.run(inputs, on_event=_print_event if args.stream else None, handle=handle)
    except RunnerError as error:
        if args.stream:
            _print_event({"event": "error", **error.to_json()})
            print(f"error: {error.error_type}: {error.message}", file=sys.stderr, flush=True)
        else:
            report_error(error)
        return error.exit_code
    except Exception as error:  # a bug: still one JSON error object and a documented code
        report_error(RunnerError(f"internal error: {error!r}"))
        if os.environ.get("WORKFLOW_DEBUG") == "1":
            raise
        return EXIT_INTERNAL
    finally:
        if args.stats and engine is not None:
            _write_stats(args.stats, handle, time.monotonic() - started)
    if args.stream:
        _print_event({"event": "result", "outputs": outputs})
        return EXIT_OK
    sys.stdout.write(json.dumps(outputs, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return EXIT_OK


_print_lock = threading.Lock()


def _print_event(event: dict[str, Any]) -> None:
    """One NDJSON line per event (``--stream``), whole lines even from several threads."""
    line = json.dumps(event, ensure_ascii=False) + "\n"
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _serve(args: argparse.Namespace, bundle: dict[str, Any]) -> int:
    from runner_template.serve import Settings, serve

    jobs = args.jobs or 4
    if not 1 <= jobs <= 1024 or not 0 <= args.port < 65536 or args.max_body < 1:
        raise InputError(
            "--serve: -j must be 1-1024, --port 0-65535 (0: any free one), --max-body positive"
        )
    if not args.host.isascii():  # a bind would need the idna codec (see http_client)
        raise InputError("--serve: --host must be an IP address or an ASCII host name")
    if not 0 < args.read_timeout <= 3600:
        raise InputError("--serve: --read-timeout must be over 0 and at most 3600 seconds")
    token = None
    if args.auth_token_env:
        # From the environment when the service starts: never in the image or its arguments.
        token = os.environ.get(args.auth_token_env, "").strip()
        if not token:
            raise InputError(f"--auth-token-env {args.auth_token_env}: the variable is empty")
    settings = Settings(
        jobs=jobs,
        max_body=args.max_body,
        request_timeout=args.request_timeout,
        queue_wait=args.queue_wait,
        grace=args.grace,
        endpoint=args.endpoint,
        provider=args.provider,
        read_timeout=args.read_timeout,
        auth_token=token,
        playground=args.playground,
    )
    try:
        return serve(bundle, args.host, args.port, settings)
    except OSError as error:
        raise InputError(
            f"--serve: cannot listen on {args.host}:{args.port}: {error.strerror}"
        ) from None


def _shard_path(path: str | None, args: argparse.Namespace) -> str | None:
    if path is None or not args.shard_env:
        return path
    shard = os.environ.get(args.shard_env)
    if not shard:
        raise InputError(f"--shard-env {args.shard_env}: the variable is not set")
    # A shard number is ASCII digits (a Kubernetes completion index); anything else is shard 0.
    return path.replace("{shard}", shard if shard.isascii() and shard.isdigit() else "0")


def _batch(args: argparse.Namespace, bundle: dict[str, Any]) -> int:
    from runner_template.batch import open_input, run_batch

    jobs = args.jobs or 1
    if jobs < 1 or jobs > 1024:
        raise InputError("-j/--jobs must be between 1 and 1024")
    input_path = _shard_path(args.input_file, args)
    output_path = _shard_path(args.output_file, args)
    try:
        source = sys.stdin.buffer if input_path in (None, "-") else open_input(input_path)
        sink = sys.stdout.buffer if output_path is None else open(output_path, "ab")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"batch: cannot open {error.filename}: {error.strerror}") from None
    with source, sink:
        return run_batch(
            bundle,
            source,
            sink,
            jobs=jobs,
            indexed=args.indexed,
            endpoint=args.endpoint,
            provider=args.provider,
        )


def report_error(error: RunnerError) -> None:
    """The error object on stdout (for programs), one readable line on stderr (for people)."""
    print(json.dumps(error.to_json(), ensure_ascii=False), flush=True)
    where = f" in step '{error.step}'" if error.step else ""
    print(f"error: {error.error_type}{where}: {error.message}", file=sys.stderr, flush=True)


def _write_stats(path: str, handle: RunHandle, total: float) -> None:
    data = {"total_seconds": total, "steps": {k: v.to_json() for k, v in handle.stats.items()}}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
