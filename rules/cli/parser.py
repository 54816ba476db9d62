"""The ``docker-workflow`` argument parser: every command, its flags, and the function it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rules.cli.build import cmd_analyze, cmd_bases, cmd_build, cmd_export, cmd_sbom
from rules.cli.deploy import cmd_k8s
from rules.cli.manage import cmd_clean, cmd_doctor, cmd_llm_server
from rules.cli.run import cmd_batch, cmd_run, cmd_serve
from rules.deploy.local import LOCAL_DEFAULT_ENDPOINT
from rules.docker.engine import BUILDER_IMAGE_ENV
from rules.errors import UserError
from rules.graph.options import OFFICIAL_BUILDER
from rules.platforms import DEFAULT_PLATFORMS
from rules.stages.compile import COMPILERS
from rules.stages.image import RUNTIMES
from rules.stages.image_names import check_reference


def image_name(text: str) -> str:
    """argparse type for image names: Docker's own grammar, checked before anything runs."""
    try:
        return check_reference(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
        "-t", "--tag", type=image_name, help="image tag (default workflow-<id>:latest)"
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
    build.add_argument(
        "--target",
        choices=("image", "web"),
        default="image",
        help="image (default), or web: a static site running it in the browser into -o DIR",
    )
    build.set_defaults(func=cmd_build)

    sbom = sub.add_parser("sbom", help="print the CycloneDX SBOM of a workflow's image")
    sbom.add_argument("workflow")
    _add_build_options(
        sbom, platforms_help="the platform whose SBOM to print (default: this machine's)"
    )
    sbom.set_defaults(func=cmd_sbom)

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
        "-t", "--tag", type=image_name, help="image tag (default workflow-<id>:latest)"
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
    serve.add_argument(
        "--auth-token-env",
        metavar="NAME",
        help="require 'Authorization: Bearer' with the token in this environment variable"
        " (every route but /healthz; the token is passed at run time, never built in)",
    )
    serve.add_argument(
        "--playground",
        action="store_true",
        help="serve the workflow's page at /playground/, running it through the service's /stream"
        " (behind --auth-token-env when given)",
    )
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
        type=image_name,
        metavar="IMAGE",
        help="image (default workflow-<id>:latest)",
    )
    k8s.add_argument("--inputs", metavar="F.jsonl", help="a batch: an Indexed Job over these")
    k8s.add_argument("--parallelism", type=int, default=2, help="batch shards and pods at once")
    k8s.add_argument("-j", "--jobs", type=int, default=1, help="inputs (or requests) per pod")
    k8s.add_argument("--serve", action="store_true", help="a Deployment and a Service")
    k8s.add_argument("--replicas", type=int, default=1, help="service pods (default 1)")
    k8s.add_argument("--endpoint", help="OLLAMA_ENDPOINT for the pods")
    k8s.add_argument(
        "--auth-token-env",
        metavar="NAME",
        help="--serve: the service needs 'Authorization: Bearer'; its pods read the token into"
        " NAME from the Secret wf-ID-auth (key token), which the cluster holds",
    )
    k8s.add_argument(
        "--write-auth-secret",
        action="store_true",
        help="also write that Secret (secret-auth.yaml) with NAME's value in this environment",
    )
    k8s.add_argument(
        "--playground", action="store_true", help="--serve: the workflow's page at /playground/"
    )
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
    server.add_argument(
        "--cors",
        action="append",
        metavar="ORIGIN",
        help="let pages of ORIGIN call it from a browser (repeatable; * and :* wildcards;"
        " default $OLLAMA_ORIGINS)",
    )
    server.add_argument("-v", "--verbose", action="store_true", help="log every request")
    server.set_defaults(func=cmd_llm_server)

    doctor = sub.add_parser("doctor", help="say what is there and what is missing, with fixes")
    doctor.add_argument("--builder-image", metavar="REF", help=f"default ${BUILDER_IMAGE_ENV}")
    doctor.add_argument("--endpoint", help="LLM server URL (default $OLLAMA_ENDPOINT, then :11434)")
    doctor.set_defaults(func=cmd_doctor)
    for command in sub.choices.values():
        command.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return parser
