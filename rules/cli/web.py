"""``docker-workflow build WORKFLOW --target web -o DIR``: the CLI's whole part of the web target.

Kept to one function of the parsed arguments so that the CLI only needs a ``--target`` option
and one call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rules.console import err_console
from rules.errors import InputProblem

# Options of ``build`` that only an image has.
IMAGE_ONLY = (
    ("--push", "push"),
    ("--oci", "oci"),
    ("--tag", "tag"),
    ("--platform", "platform"),
    ("--label", "label"),
)


def build_web(args: argparse.Namespace) -> int:
    """Write the site; print its folder (stdout) and its size (stderr)."""
    from rules.stages.web.site import build_site

    if not getattr(args, "output_dir", None):
        raise InputProblem("build --target web needs -o DIR: the folder to write the site into")
    for option, name in IMAGE_ONLY:
        if getattr(args, name, None):
            raise InputProblem(f"{option} is for images: build --target web writes a site")
    report = build_site(Path(args.workflow), Path(args.output_dir), args.tools, args.model)
    err_console().print(report.summary())
    print(report.out)
    return 0
