"""``build``, ``bases``, ``analyze`` and ``export``: the commands that make things from a
workflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rules.cli.convert import build_options
from rules.console import err_console, out_console
from rules.errors import InputProblem
from rules.platforms import parse_platforms


def build_image(args: argparse.Namespace, platforms: list[str], force: bool = False) -> str:
    """Build the image through the graph, say so on stderr, and return its tag."""
    from rules.graph.build import build_workflow

    options = build_options(args, platforms)
    tag = build_workflow(Path(args.workflow), options, force=force).tag
    err_console().print(f"{tag} is ready ({', '.join(options.platforms)})")
    return tag


def cmd_build(args: argparse.Namespace) -> int:
    if args.target == "web":  # a static site instead of an image (docs/WEB.md)
        from rules.cli.web import build_web

        return build_web(args)
    if args.push and args.oci:
        raise InputProblem("choose one of --push and --oci")
    tag = build_image(args, parse_platforms(args.platform))
    if args.push:  # NAME@sha256:... of what landed in the registry
        from rules.docker.registry_push import pushed_reference

        tag = pushed_reference(tag) or tag
    print(tag)
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    """Print the CycloneDX SBOM that the workflow's image ships for one platform."""
    import sys

    from rules.cli.convert import native_platform
    from rules.graph.sbom import workflow_sbom
    from rules.platforms import DEFAULT_PLATFORMS

    platform = parse_platforms(args.platform)[0] if args.platform else native_platform()
    options = build_options(args, list(DEFAULT_PLATFORMS))  # as the image build makes them
    sys.stdout.buffer.write(workflow_sbom(Path(args.workflow), options, platform))
    return 0


def cmd_bases(args: argparse.Namespace) -> int:
    from rules.stages.bases import ensure_builder_image

    print(ensure_builder_image(parse_platforms(args.platform), rebuild=args.rebuild))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from rules.stages.pipeline import analyze_file

    _, analysis, _ = analyze_file(Path(args.workflow), args.tools, args.model)
    if args.json:
        print(json.dumps(analysis.to_json(), indent=2))
        return 0
    from rich.table import Table
    from rich.text import Text

    from runner_template.http_client import redact

    console = out_console()
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
    table.add_row("Environment", listing(analysis.environment))
    table.add_row("TLS (https)", "yes" if analysis.https else "no")
    table.add_row("Tools", f"{analysis.tools_available} available -> {analysis.tools_used} kept")
    console.print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rules.stages.export import export_portable

    target = export_portable(Path(args.workflow), Path(args.output), args.tools, args.model)
    print(target)
    return 0
