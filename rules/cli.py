"""The ``docker-workflow`` command line (also ``python docker_workflow.py ...``).

Every user-caused failure surfaces as :class:`rules.errors.UserError`: one line per problem on
stderr, a non-zero exit, no traceback. Commands are thin: the work is in the pipeline modules.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rules.errors import UserError
from rules.pipeline import analyze_file, prepare

LOCAL_DEFAULT_ENDPOINT = "http://localhost:11434"
err_console = Console(stderr=True, highlight=False)


def _read_inputs_arg(inputs: str | None, input_file: str | None) -> str:
    """The inputs as JSON text, from the argument or a file (a BOM is dropped)."""
    if inputs is not None and input_file is not None:
        raise UserError("give inputs either as an argument or with --input-file, not both")
    if input_file == "-":
        return sys.stdin.buffer.read().decode("utf-8-sig", errors="strict")
    if input_file is not None:
        try:
            return Path(input_file).read_bytes().decode("utf-8-sig")
        except OSError as error:
            raise UserError(f"{input_file}: cannot read input file: {error.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"{input_file}: input file is not UTF-8 text") from None
    return inputs if inputs is not None else "{}"


# -- analyze ---------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    _, analysis, _ = analyze_file(Path(args.workflow), args.tools, args.model)
    if args.json:
        print(json.dumps(analysis.to_json(), indent=2))
        return 0
    console = Console(highlight=False)
    console.print(f"[bold]Workflow[/bold] {analysis.workflow_id} {analysis.version or ''}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="cyan")
    table.add_column()

    def listing(items: list[str]) -> str:
        return f"{len(items)}" + (f"  ({', '.join(items)})" if items else "")

    table.add_row("LLM tools", listing(analysis.llm_tools))
    table.add_row("Executable tools", listing(analysis.executable_tools))
    table.add_row("Ollama models", listing(analysis.models))
    table.add_row("Python modules", listing(analysis.python_modules))
    table.add_row("pip packages", listing(analysis.pip_packages))
    table.add_row("Endpoints", listing(analysis.endpoints))
    table.add_row("TLS (https)", "yes" if analysis.https else "no")
    table.add_row("Tools", f"{analysis.tools_available} available -> {analysis.tools_used} kept")
    console.print(table)
    return 0


# -- run --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    inputs_text = _read_inputs_arg(args.inputs, args.input_file)
    if not args.local:
        raise UserError(
            "running in Docker is not available in this version: use --local to run the"
            " rendered runner with this machine's Python"
        )
    prepared = prepare(Path(args.workflow), args.tools, args.model)
    env = dict(os.environ)
    env["WORKFLOW_BUNDLE"] = str(prepared.bundle_path)
    env["OLLAMA_ENDPOINT"] = args.endpoint or env.get("OLLAMA_ENDPOINT") or LOCAL_DEFAULT_ENDPOINT
    env.pop("INPUT", None)
    command = [sys.executable, str(prepared.entry_point), "--input-file", "-"]
    completed = subprocess.run(command, input=inputs_text.encode("utf-8"), env=env, check=False)
    return completed.returncode


# -- export -----------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from rules.export import export_portable

    target = export_portable(Path(args.workflow), Path(args.output), args.tools, args.model)
    print(target)
    return 0


# -- llm-server -------------------------------------------------------------------------------


def cmd_llm_server(args: argparse.Namespace) -> int:
    try:
        from devllm.model import ModelUnavailable
        from devllm.server import serve
    except ImportError:
        raise UserError("the dev LLM server is not installed: pip install '.[devllm]'") from None
    try:
        serve(args.host, args.port, args.model or [], verbose=args.verbose)
    except ModelUnavailable as error:
        raise UserError(f"llm-server: {error}") from None
    except OSError as error:
        raise UserError(
            f"llm-server: cannot listen on {args.host}:{args.port}: {error.strerror}"
        ) from None
    return 0


# -- parser -----------------------------------------------------------------------------------


def _add_resolution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools",
        action="append",
        type=Path,
        metavar="DIR",
        help="tool registry folder searched first (repeatable)",
    )
    parser.add_argument(
        "--model", help="model for LLM tools that name none (default: $OLLAMA_MODEL, then llama3)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docker-workflow",
        description="Turn an LLM workflow (JSON) into a tiny, multi-arch container image.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = sub.add_parser("analyze", help="show what a workflow needs (tools, models, modules)")
    analyze.add_argument("workflow")
    analyze.add_argument("--json", action="store_true", help="machine-readable output")
    _add_resolution_options(analyze)
    analyze.set_defaults(func=cmd_analyze)

    run = sub.add_parser("run", help="run a workflow")
    run.add_argument("workflow")
    run.add_argument("inputs", nargs="?", help="inputs as a JSON object (default {})")
    run.add_argument("-f", "--input-file", help="read inputs from a JSON file ('-': stdin)")
    run.add_argument(
        "--local", action="store_true", help="run the rendered runner with this Python"
    )
    run.add_argument(
        "--endpoint", help=f"Ollama URL (default $OLLAMA_ENDPOINT, then {LOCAL_DEFAULT_ENDPOINT})"
    )
    _add_resolution_options(run)
    run.set_defaults(func=cmd_run)

    export = sub.add_parser("export", help="write a portable workflow with its tools embedded")
    export.add_argument("workflow")
    export.add_argument(
        "-o", "--output", default="portable", help="output folder (default ./portable)"
    )
    _add_resolution_options(export)
    export.set_defaults(func=cmd_export)

    server = sub.add_parser(
        "llm-server", help="serve a tiny real model over the Ollama API (development only)"
    )
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=11434, help="port (0 picks a free one)")
    server.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="a model name to answer to (repeatable; default llama3 and smollm2:135m)",
    )
    server.add_argument("-v", "--verbose", action="store_true", help="log every request")
    server.set_defaults(func=cmd_llm_server)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        for line in error.lines():
            err_console.print(
                f"[red]error:[/red] {line}", soft_wrap=True, markup=True, highlight=False
            )
        return error.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
