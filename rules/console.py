"""The one stderr console for progress and messages (rich), created on first use.

Importing rich costs about 0.15 s; ``doit`` loads the build rules on every run, including
no-op runs, so nothing here is imported until something is printed.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)
