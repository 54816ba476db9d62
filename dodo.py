"""The build graph of this repository's workflows (run ``doit``; see docs/BUILD_GRAPH.md).

Declare images with ``workflow_image``; every other ``workflows/*.json`` gets a default target
(both platforms, Nuitka, scratch runtime) named after its file.
"""

from rules.tasks import TASK_CREATORS, default_targets, doit_config, workflow_image

# An edge deployment of the summarizer: arm64 only, its own tag.
workflow_image(
    "summarizer-edge",
    "workflows/simple_summarizer.json",
    platforms=["linux/arm64"],
    tag="edge/summarizer:latest",
)
default_targets("workflows")

DOIT_CONFIG = doit_config()
globals().update(TASK_CREATORS)
