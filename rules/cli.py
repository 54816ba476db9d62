"""The ``docker-workflow`` command line (also ``python docker_workflow.py ...``).

Every user-caused failure surfaces as :class:`rules.errors.UserError`: one line per problem on
stderr, a non-zero exit (2 for bad input, 1 otherwise), no traceback. Commands are thin: the
work is in the pipeline modules, reached through the one build graph.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as platform_module
import subprocess
import sys
import tempfile
from pathlib import Path

from rules.compile import COMPILERS
from rules.console import err_console, print_message, set_quiet
from rules.docker_env import BUILDER_IMAGE_ENV as BUILDER_ENV
from rules.errors import InputProblem, UserError
from rules.image import RUNTIMES
from rules.image_names import check_reference
from rules.jsonfile import load_json
from rules.options import OFFICIAL_BUILDER, BuildOptions
from rules.platforms import DEFAULT_PLATFORMS, parse_platforms

LOCAL_DEFAULT_ENDPOINT = "http://localhost:11434"
MAX_INPUT_BYTES = 256 * 1024 * 1024


def _image_name(text: str) -> str:
    """argparse type for image names: Docker's own grammar, checked before anything runs."""
    try:
        return check_reference(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    undecodable) is an input error.
    """
    if inputs is not None and input_file is not None:
        raise InputProblem("give inputs either as an argument or with --input-file, not both")
    if inputs is not None:
        try:
            inputs.encode("utf-8")
        except UnicodeEncodeError:
            raise InputProblem("the inputs argument is not UTF-8 text") from None
        return inputs
    if input_file == "-" or (input_file is None and not sys.stdin.isatty()):
        return _decode_inputs(sys.stdin.buffer.read(MAX_INPUT_BYTES + 1), "stdin")
    if input_file is not None:
        try:
            with open(input_file, "rb") as handle:
                return _decode_inputs(handle.read(MAX_INPUT_BYTES + 1), input_file)
        except OSError as error:
            raise InputProblem(f"{input_file}: cannot read input file: {error.strerror}") from None
    return "{}"


def parse_labels(items: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputProblem(f"--label {item!r}: write KEY=VALUE")
        labels[key] = value
    return labels


# -- analyze ---------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    from rules.pipeline import analyze_file

    _, analysis, _ = analyze_file(Path(args.workflow), args.tools, args.model)
    if args.json:
        print(json.dumps(analysis.to_json(), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from runner_template.http_client import redact

    console = Console(highlight=False, markup=False)
    console.print(
        Text.assemble(("Workflow ", "bold"), f"{analysis.workflow_id} {analysis.version or ''}")
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="cyan")
    table.add_column()

    def listing(items: list[str]) -> Text:
        return Text(f"{len(items)}" + (f"  ({', '.join(items)})" if items else ""))

    table.add_row("LLM tools", listing(analysis.llm_tools))
    table.add_row("Executable tools", listing(analysis.executable_tools))
    table.add_row("API tools", listing(analysis.api_tools))
    table.add_row("Sub-workflows", listing(analysis.sub_workflows))
    table.add_row("Ollama models", listing(analysis.models))
    table.add_row("Python modules", listing(analysis.python_modules))
    table.add_row("pip packages", listing(analysis.pip_packages))
    table.add_row("Endpoints", listing([redact(e) for e in analysis.endpoints]))
    table.add_row("TLS (https)", "yes" if analysis.https else "no")
    table.add_row("Tools", f"{analysis.tools_available} available -> {analysis.tools_used} kept")
    console.print(table)
    return 0


# -- build ------------------------------------------------------------------------------------


def _build_options(args: argparse.Namespace, platforms: list[str]) -> BuildOptions:
    if getattr(args, "output_dir", None):
        os.environ["DOCKER_WORKFLOW_CACHE"] = str(Path(args.output_dir).resolve())
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
    )


def cmd_build(args: argparse.Namespace) -> int:
    from rules.build import build_workflow

    if args.push and args.oci:
        raise InputProblem("choose one of --push and --oci")
    options = _build_options(args, parse_platforms(args.platform))
    print(build_workflow(Path(args.workflow), options).tag)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from rules.doctor import run_doctor

    return run_doctor(args.builder_image, args.endpoint)


def cmd_bases(args: argparse.Namespace) -> int:
    from rules.bases import ensure_builder_image

    print(ensure_builder_image(parse_platforms(args.platform), rebuild=args.rebuild))
    return 0


# -- run --------------------------------------------------------------------------------------


def native_platform() -> str:
    machine = platform_module.machine().lower()
    return "linux/arm64" if machine in ("aarch64", "arm64") else "linux/amd64"


def cmd_run(args: argparse.Namespace) -> int:
    from rules.doctor import hint_on_exit

    inputs_text = read_inputs_arg(args.inputs, args.input_file)
    if args.local:
        return hint_on_exit(_run_local(args, inputs_text))
    return hint_on_exit(_run_in_docker(args, inputs_text))


def _run_local(args: argparse.Namespace, inputs_text: str) -> int:
    from rules.build import prepare
    from rules.local_packages import local_site_packages
    from rules.prepared import read_lock

    platform = native_platform()
    prepared = prepare(Path(args.workflow), args.tools, args.model, [platform])
    env = dict(os.environ)
    env["OLLAMA_ENDPOINT"] = args.endpoint or env.get("OLLAMA_ENDPOINT") or LOCAL_DEFAULT_ENDPOINT
    if args.provider:
        env["LLM_PROVIDER"] = args.provider
    env.pop("INPUT", None)
    site = local_site_packages(read_lock(prepared.out_dir.parent), platform)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    # A private copy of the bundle: another build may rewrite the cache while this one runs.
    with tempfile.TemporaryDirectory(prefix="dw-run-") as private:
        bundle = Path(private) / "bundle.json"
        bundle.write_bytes(prepared.bundle_path.read_bytes())
        env["WORKFLOW_BUNDLE"] = str(bundle)
        command = [sys.executable, "-m", "runner_template", "--input-file", "-"]
        if args.stream:
            command.append("--stream")
        completed = subprocess.run(command, input=inputs_text.encode("utf-8"), env=env, check=False)
    return completed.returncode


def _run_limits(args: argparse.Namespace):
    from rules.containers import RunLimits, parse_env

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


def _run_in_docker(args: argparse.Namespace, inputs_text: str) -> int:
    from rules.build import build_workflow
    from rules.containers import run_container

    run_platform = parse_platforms(args.platform)[0] if args.platform else native_platform()
    limits = _run_limits(args)
    options = _build_options(args, [run_platform])
    tag = build_workflow(Path(args.workflow), options, force=args.build).tag

    def passthrough(data: bytes) -> None:  # --stream: events as they come
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    command = ["--input-file", "-", *(["--stream"] if args.stream else [])]
    result = run_container(
        tag,
        inputs_text.encode("utf-8"),
        command=command,
        endpoint=args.endpoint,
        platform=run_platform,
        network=args.network,
        limits=limits,
        stream_stdout=passthrough if args.stream else None,
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    return result.exit_code


# -- batch ------------------------------------------------------------------------------------


def cmd_batch(args: argparse.Namespace) -> int:
    from rules.batch import BatchSettings, InputsFile, run_batch
    from rules.build import build_workflow

    if not 1 <= args.jobs <= 1024:
        raise InputProblem("-j/--jobs must be between 1 and 1024")
    if not 1 <= args.replicas <= 1000:
        raise InputProblem("--replicas must be between 1 and 1000")
    inputs = InputsFile.scan(Path(args.inputs))
    limits = _run_limits(args)
    run_platform = parse_platforms(args.platform)[0] if args.platform else native_platform()
    options = _build_options(args, [run_platform])
    tag = build_workflow(Path(args.workflow), options).tag
    settings = BatchSettings(
        jobs=args.jobs,
        engine=args.engine,
        replicas=args.replicas,
        max_concurrent=args.max_concurrent,
        endpoint=args.endpoint,
        network=args.network,
        retry_failed=args.retry_failed,
        shard_retries=args.shard_retries,
    )
    return run_batch(tag, inputs, Path(args.output), settings, limits)


# -- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from rules.serve import serve_container, serve_local

    if not 0 < args.port < 65536:
        raise InputProblem("-p/--port must be between 1 and 65535")
    if not 1 <= args.jobs <= 1024:
        raise InputProblem("-j/--jobs must be between 1 and 1024")
    limits = _run_limits(args)
    if args.local:
        from rules.build import prepare

        prepared = prepare(Path(args.workflow), args.tools, args.model, [native_platform()])
        env = dict(limits.env)
        if args.endpoint:
            env["OLLAMA_ENDPOINT"] = args.endpoint
        env.setdefault("OLLAMA_ENDPOINT", os.environ.get("OLLAMA_ENDPOINT", LOCAL_DEFAULT_ENDPOINT))
        return serve_local(prepared.bundle_path, args.port, args.bind, args.jobs, env)
    from rules.build import build_workflow

    run_platform = parse_platforms(args.platform)[0] if args.platform else native_platform()
    tag = build_workflow(Path(args.workflow), _build_options(args, [run_platform])).tag
    return serve_container(
        tag,
        port=args.port,
        bind=args.bind,
        jobs=args.jobs,
        endpoint=args.endpoint,
        network=args.network,
        limits=limits,
        detach=args.detach,
    )


# -- k8s --------------------------------------------------------------------------------------


def cmd_k8s(args: argparse.Namespace) -> int:
    from rules.batch import InputsFile
    from rules.image_names import default_tag
    from rules.k8s import K8sOptions, batch_manifests, serve_manifests, write_manifests
    from rules.pipeline import analyze_file

    if not args.inputs and not args.serve:
        raise InputProblem(
            "say what to deploy: --inputs F.jsonl (an Indexed Job) and/or --serve (a"
            " Deployment and a Service)"
        )
    if not 1 <= args.parallelism <= 10000 or not 1 <= args.replicas <= 1000:
        raise InputProblem("--parallelism must be 1-10000 and --replicas 1-1000")
    _, analysis, _ = analyze_file(Path(args.workflow), args.tools, args.model)
    options = K8sOptions(
        image=args.tag or default_tag(analysis.workflow_id),
        workflow_id=analysis.workflow_id,
        endpoint=args.endpoint,
        parallelism=args.parallelism,
        jobs=args.jobs,
        replicas=args.replicas,
        memory=args.memory,
        cpu=args.cpu,
    )
    manifests = {}
    if args.inputs:
        manifests.update(batch_manifests(options, InputsFile.scan(Path(args.inputs))))
    if args.serve:
        manifests.update(serve_manifests(options))
    for path in write_manifests(Path(args.output), manifests):
        print(path)
    return 0


# -- clean ------------------------------------------------------------------------------------


def cmd_clean(args: argparse.Namespace) -> int:
    from rules.image_store import describe, managed_images, remove_images

    if not args.workflow and not args.all:
        raise InputProblem(
            "say what to clean: 'clean WORKFLOW' removes that workflow's images,"
            " 'clean --all' every image docker-workflow built"
        )
    workflow_id = None if args.all else _workflow_id(Path(args.workflow))
    images = managed_images(workflow_id, parse_labels(args.label))
    if not images:
        print("nothing to clean")
        return 0
    for image in images:
        print(f"  {describe(image)}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"{len(images)} image(s) would be removed: pass --yes to confirm")
        if input(f"Remove {len(images)} image(s)? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    print(f"removed {remove_images(images)} image(s)")
    return 0


def _workflow_id(path: Path) -> str:
    """The workflow's id, even from a file that no longer validates (it may be why we clean)."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("workflow_id"), str):
        raise InputProblem(f"{path}: $.workflow_id: missing; cannot tell which images are its own")
    return data["workflow_id"]


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


def _add_build_options(parser: argparse.ArgumentParser, platforms_help: str) -> None:
    parser.add_argument(
        "-t", "--tag", type=_image_name, help="image tag (default workflow-<id>:latest)"
    )
    parser.add_argument(
        "-o",
        "--output",
        dest="output_dir",
        metavar="DIR",
        help="build output folder (default ./cache)",
    )
    parser.add_argument("--platform", help=platforms_help)
    parser.add_argument("--compiler", choices=COMPILERS, default="nuitka", help="default nuitka")
    parser.add_argument(
        "--runtime", choices=sorted(RUNTIMES), default="scratch", help="default scratch"
    )
    parser.add_argument(
        "--builder-image",
        metavar="REF",
        help="compile stage image (default $DOCKER_WORKFLOW_BUILDER_IMAGE, then"
        f" {OFFICIAL_BUILDER})",
    )
    parser.add_argument(
        "--label", action="append", metavar="KEY=VALUE", help="an extra image label (repeatable)"
    )
    parser.add_argument(
        "--cross",
        choices=("auto", "off"),
        default="auto",
        help="auto (default): a foreign platform's C compiles natively with Zig; off: under QEMU",
    )
    _add_resolution_options(parser)


def _add_llm_options(parser: argparse.ArgumentParser, endpoint_help: str) -> None:
    parser.add_argument("--endpoint", help=endpoint_help)
    parser.add_argument(
        "--provider",
        choices=("ollama", "openai"),
        help="the LLM server's API: Ollama's, or OpenAI-compatible /v1/chat/completions",
    )


def _add_container_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network",
        help="container network (default bridge; with 'host', host.docker.internal is 127.0.0.1)",
    )
    parser.add_argument("--memory", default="512m", help="container memory limit (default 512m)")
    parser.add_argument("--cpus", type=float, help="container CPU limit (default: none)")
    parser.add_argument("--pids-limit", type=int, help="container process limit (default 256)")
    parser.add_argument(
        "-e",
        "--env",
        action="append",
        metavar="NAME[=VALUE]",
        help="set a variable in the container; NAME alone passes this environment's value",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docker-workflow",
        description="Turn an LLM workflow (JSON) into a tiny, multi-arch container image.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser("build", help="build a workflow's image (multi-arch by default)")
    build.add_argument("workflow")
    _add_build_options(build, platforms_help=f"default {','.join(DEFAULT_PLATFORMS)}")
    build.add_argument("--push", action="store_true", help="push the image index to its registry")
    build.add_argument("--oci", metavar="FILE", help="write an OCI tarball instead of loading")
    build.set_defaults(func=cmd_build)

    run = sub.add_parser("run", help="run a workflow in an ephemeral container (or --local)")
    run.add_argument("workflow")
    run.add_argument("inputs", nargs="?", help="inputs as a JSON object (default: stdin, or {})")
    run.add_argument("-f", "--input-file", help="read inputs from a JSON file ('-': stdin)")
    run.add_argument("-b", "--build", action="store_true", help="rebuild the image first")
    _add_llm_options(
        run,
        "LLM server URL (default: the image's; with --local $OLLAMA_ENDPOINT, then"
        f" {LOCAL_DEFAULT_ENDPOINT})",
    )
    _add_container_options(run)
    run.add_argument(
        "--local", action="store_true", help="run the rendered runner with this machine's Python"
    )
    run.add_argument(
        "--stream", action="store_true", help="print the run's events as NDJSON while it goes"
    )
    _add_build_options(run, platforms_help="the platform to run (default: this machine's)")
    run.set_defaults(func=cmd_run)

    batch = sub.add_parser("batch", help="run a file of inputs (JSON Lines) through a workflow")
    batch.add_argument("workflow")
    batch.add_argument("inputs", help="JSON Lines: one inputs object per line")
    batch.add_argument("-o", "--output", required=True, metavar="RESULTS", help="results file")
    batch.add_argument("-j", "--jobs", type=int, default=1, help="inputs at once per container")
    batch.add_argument("--engine", choices=("local", "swarm"), default="local")
    batch.add_argument("--replicas", type=int, default=2, help="swarm: tasks (shards)")
    batch.add_argument(
        "--max-concurrent", type=int, help="swarm: tasks running at once (default: all)"
    )
    batch.add_argument(
        "--shard-retries", type=int, default=2, help="swarm: reruns of a failed shard"
    )
    batch.add_argument(
        "--retry-failed", action="store_true", help="run the inputs whose result is an error again"
    )
    _add_llm_options(batch, "LLM server URL (default: the image's)")
    _add_container_options(batch)
    batch.add_argument(
        "-t", "--tag", type=_image_name, help="image tag (default workflow-<id>:latest)"
    )
    batch.add_argument("--platform", help="the platform to run (default: this machine's)")
    batch.add_argument("--compiler", choices=COMPILERS, default="nuitka", help="default nuitka")
    batch.add_argument("--builder-image", metavar="REF", help="compile stage image")
    batch.set_defaults(func=cmd_batch, runtime="scratch", label=None)
    _add_resolution_options(batch)

    serve = sub.add_parser("serve", help="serve a workflow over HTTP (a container, or --local)")
    serve.add_argument("workflow")
    serve.add_argument("-p", "--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--bind", default="127.0.0.1", help="address to publish on (default 127.0.0.1)"
    )
    serve.add_argument("-j", "--jobs", type=int, default=4, help="runs at once (default 4)")
    serve.add_argument("--detach", action="store_true", help="leave the container running")
    serve.add_argument("--local", action="store_true", help="serve with this machine's Python")
    _add_llm_options(serve, "LLM server URL (default: the image's)")
    _add_container_options(serve)
    _add_build_options(serve, platforms_help="the platform to run (default: this machine's)")
    serve.set_defaults(func=cmd_serve)

    k8s = sub.add_parser("k8s", help="write Kubernetes manifests (an Indexed Job, a service)")
    k8s.add_argument("workflow")
    k8s.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for manifests")
    k8s.add_argument(
        "-t",
        "--tag",
        type=_image_name,
        metavar="IMAGE",
        help="image (default workflow-<id>:latest)",
    )
    k8s.add_argument("--inputs", metavar="F.jsonl", help="a batch: an Indexed Job over these")
    k8s.add_argument("--parallelism", type=int, default=2, help="batch shards and pods at once")
    k8s.add_argument("-j", "--jobs", type=int, default=1, help="inputs (or requests) per pod")
    k8s.add_argument("--serve", action="store_true", help="a Deployment and a Service")
    k8s.add_argument("--replicas", type=int, default=1, help="service pods (default 1)")
    k8s.add_argument("--endpoint", help="OLLAMA_ENDPOINT for the pods")
    k8s.add_argument("--memory", default="512Mi", help="memory limit per pod (default 512Mi)")
    k8s.add_argument("--cpu", default="1", help="CPU limit per pod (default 1)")
    _add_resolution_options(k8s)
    k8s.set_defaults(func=cmd_k8s)

    clean = sub.add_parser("clean", help="remove images built by docker-workflow")
    clean.add_argument("workflow", nargs="?")
    clean.add_argument("-a", "--all", action="store_true", help="every image docker-workflow built")
    clean.add_argument(
        "--label", action="append", metavar="KEY=VALUE", help="only images with this label"
    )
    clean.add_argument("-y", "--yes", action="store_true", help="do not ask")
    clean.set_defaults(func=cmd_clean)

    analyze = sub.add_parser("analyze", help="show what a workflow needs (tools, models, modules)")
    analyze.add_argument("workflow")
    analyze.add_argument("--json", action="store_true", help="machine-readable output")
    _add_resolution_options(analyze)
    analyze.set_defaults(func=cmd_analyze)

    export = sub.add_parser("export", help="write a portable workflow with its tools embedded")
    export.add_argument("workflow")
    export.add_argument(
        "-o", "--output", default="portable", help="output folder (default ./portable)"
    )
    _add_resolution_options(export)
    export.set_defaults(func=cmd_export)

    bases = sub.add_parser("bases", help="make the local builder image (offline, debootstrap)")
    bases.add_argument("--platform", help=f"default {','.join(DEFAULT_PLATFORMS)}")
    bases.add_argument("--rebuild", action="store_true", help="build it again even if it exists")
    bases.set_defaults(func=cmd_bases)

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

    doctor = sub.add_parser("doctor", help="say what is there and what is missing, with fixes")
    doctor.add_argument("--builder-image", metavar="REF", help=f"default ${BUILDER_ENV}")
    doctor.add_argument("--endpoint", help="LLM server URL (default $OLLAMA_ENDPOINT, then :11434)")
    doctor.set_defaults(func=cmd_doctor)
    for command in sub.choices.values():
        command.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        set_quiet()
    try:
        return args.func(args)
    except UserError as error:
        for line in error.lines():
            print_message("error", "red", line)
        return error.exit_code
    except KeyboardInterrupt:
        err_console().print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
