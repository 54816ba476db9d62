"""The one conversion from parsed arguments to the option objects of the library: build options,
container limits, the platform to run, labels, and the inputs text of ``run``."""

from __future__ import annotations

import argparse
import platform as platform_module
import sys
from pathlib import Path

from rules.errors import InputProblem, InvalidInput
from rules.graph.options import BuildOptions
from rules.platforms import parse_platforms
from runner_template.jsonsafe import JSONLimitError
from runner_template.jsonsafe import loads as bounded_loads

MAX_INPUT_BYTES = 256 * 1024 * 1024


def _decode_inputs(data: bytes, origin: str) -> str:
    if len(data) > MAX_INPUT_BYTES:
        raise InputProblem(f"{origin}: inputs over {MAX_INPUT_BYTES} bytes are refused")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputProblem(f"{origin}: inputs are not UTF-8 text (byte {error.start})") from None


def read_inputs_arg(inputs: str | None, input_file: str | None) -> str:
    """The inputs as JSON text: the argument, ``-f FILE``, ``-f -``, or piped stdin; else ``{}``.

    A BOM is dropped; text that is not UTF-8 (bytes on stdin, or an argument the shell passed
    undecodable) is an input error. The text is checked here against the bounds the engine
    reads it with (``runner_template.jsonsafe``), so an integer of 4,300+ digits or a nesting
    too deep is one line naming where the inputs came from (the engine would say "stdin") and
    the JSON path. Everything else (syntax, types) is the engine's to report, as it does in
    an image: a JSON error object on stdout and exit 2.
    """
    text, origin = _inputs_text(inputs, input_file)
    try:
        bounded_loads(text)
    except JSONLimitError as error:
        raise InvalidInput.single(origin, error.where, error.message) from None
    except ValueError:  # not JSON (or empty, which means {}): the engine says so
        pass
    return text


def _inputs_text(inputs: str | None, input_file: str | None) -> tuple[str, str]:
    if inputs is not None and input_file is not None:
        raise InputProblem("give inputs either as an argument or with --input-file, not both")
    if inputs is not None:
        try:
            inputs.encode("utf-8")
        except UnicodeEncodeError:
            raise InputProblem("the inputs argument is not UTF-8 text") from None
        return inputs, "the inputs argument"
    if input_file == "-" or (input_file is None and not sys.stdin.isatty()):
        return _decode_inputs(sys.stdin.buffer.read(MAX_INPUT_BYTES + 1), "stdin"), "stdin"
    if input_file is not None:
        try:
            with open(input_file, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as error:
            raise InputProblem(f"{input_file}: cannot read input file: {error.strerror}") from None
        return _decode_inputs(data, input_file), input_file
    return "{}", "inputs"


def parse_labels(items: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputProblem(f"--label {item!r}: write KEY=VALUE")
        labels[key] = value
    return labels


def build_options(args: argparse.Namespace, platforms: list[str]) -> BuildOptions:
    return BuildOptions(
        platforms=platforms,
        compiler=args.compiler,
        runtime=args.runtime,
        builder_image=args.builder_image,
        tag=args.tag,
        push=getattr(args, "push", False),
        oci_path=Path(args.oci).resolve() if getattr(args, "oci", None) else None,
        tools_dirs=args.tools,
        model=args.model,
        labels=parse_labels(getattr(args, "label", None)),
        cross=getattr(args, "cross", "auto"),
        cache=output_dir(args),
    )


def output_dir(args: argparse.Namespace) -> Path | None:
    """``-o DIR``: the build output folder of this command."""
    return Path(args.output_dir).resolve() if getattr(args, "output_dir", None) else None


def native_platform() -> str:
    machine = platform_module.machine().lower()
    return "linux/arm64" if machine in ("aarch64", "arm64") else "linux/amd64"


def run_platform(args: argparse.Namespace) -> str:
    """The one platform a command runs on: ``--platform``'s first, else this machine's."""
    return parse_platforms(args.platform)[0] if args.platform else native_platform()


def run_limits(args: argparse.Namespace):
    from rules.deploy.container import RunLimits, parse_env

    if args.cpus is not None and not 0 < args.cpus <= 1024:
        raise InputProblem("--cpus must be a positive number of CPUs")
    if args.pids_limit is not None and args.pids_limit < 1:
        raise InputProblem("--pids-limit must be at least 1")
    env = parse_env(args.env)
    if args.provider:
        env["LLM_PROVIDER"] = args.provider
    return RunLimits(
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids_limit or RunLimits.pids,
        env=env,
    )
