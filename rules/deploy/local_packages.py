"""The locked packages of a workflow on this machine, for ``run --local``.

The image gets its packages compiled in; a local run gets them installed once, offline, from
the lock's own wheels (the host's platform), into ``cache/site/<digest>``, which goes on the
runner's ``PYTHONPATH``. Nothing is installed into the user's environment.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

from rules.errors import UserError
from rules.fsutil import locked, replace_tree, staging_dir
from rules.paths import cache_dir
from rules.platforms import arch_of
from rules.stages.lock import lock_wheels, requirements_txt, wheels_dir


def local_site_packages(lock: dict[str, Any], platform: str) -> Path | None:
    """A folder with the lock's packages for ``platform`` installed, or None if it has none."""
    wheels = lock_wheels(lock, platform)
    if not wheels:
        return None
    text = requirements_txt(wheels)
    target = cache_dir() / "site" / hashlib.sha256(text.encode()).hexdigest()[:20]
    if target.is_dir():
        return target
    with locked(cache_dir() / "site" / f"{target.name}.lock"):
        if target.is_dir():
            return target
        staging = staging_dir(target)
        requirements = staging.parent / f"{target.name}.requirements.txt"
        requirements.write_text(text)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "--find-links",
            str(wheels_dir(arch_of(platform))),
            "--target",
            str(staging),
            "-r",
            str(requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        requirements.unlink(missing_ok=True)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if "WARNING" not in line]
            raise UserError(
                "installing the workflow's packages for a local run failed:\n  "
                + "\n  ".join(lines[-6:])
            )
        replace_tree(staging, target)
    return target
