"""``clean`` and ``llm-server``: the images docker-workflow made, and the dev LLM server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rules.cli.convert import parse_labels
from rules.errors import InputProblem, UserError
from rules.files.jsonfile import load_json


def cmd_clean(args: argparse.Namespace) -> int:
    from rules.docker.image_store import describe, managed_images, remove_images

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


def cmd_doctor(args: argparse.Namespace) -> int:
    from rules.cli.doctor import run_doctor

    return run_doctor(args.builder_image, args.endpoint)


def cmd_llm_server(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise InputProblem("--port must be between 0 and 65535 (0 picks a free one)")
    try:
        from devllm.model import ModelUnavailable
        from devllm.server import serve
    except ImportError:
        raise UserError("the dev LLM server is not installed: pip install '.[devllm]'") from None
    try:
        serve(args.host, args.port, args.model or [], verbose=args.verbose, cors=args.cors)
    except ModelUnavailable as error:
        raise UserError(f"llm-server: {error}") from None
    except OSError as error:
        raise UserError(
            f"llm-server: cannot listen on {args.host}:{args.port}: {error.strerror}"
        ) from None
    return 0
