"""The build graph of this repository's workflows (run ``doit``; see docs/BUILD_GRAPH.md).

Declare images with ``workflow_image``; every other ``workflows/*.json`` gets a default target
(both platforms, Nuitka, scratch runtime) named after its file.
"""

from rules.graph.targets import default_targets, workflow_image
from rules.graph.tasks import (  # noqa: F401 (doit finds the task creators by name)
    doit_config,
    task_analyze,
    task_compile,
    task_image,
    task_lock,
    task_render,
    task_shake,
)

# An edge deployment of the summarizer: arm64 only, its own tag.
workflow_image(
    "summarizer-edge",
    "workflows/simple_summarizer.json",
    platforms=["linux/arm64"],
    tag="edge/summarizer:latest",
)
default_targets("workflows")

DOIT_CONFIG = doit_config()
