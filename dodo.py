"""The build graph of this repository's workflows (run ``doit``; see docs/BUILD_GRAPH.md).

Declare images with ``workflow_image``; every other ``workflows/*.json`` gets a default target
(both platforms, Nuitka, scratch runtime) named after its file.
"""

from rules.graph.targets import TARGETS, default_targets, workflow_image
from rules.graph.tasks import BuildGraph, doit_config

# An edge deployment of the summarizer: arm64 only, its own tag.
workflow_image(
    "summarizer-edge",
    "workflows/simple_summarizer.json",
    platforms=["linux/arm64"],
    tag="edge/summarizer:latest",
)
default_targets("workflows")

globals().update(BuildGraph(TARGETS).task_creators())  # doit finds task_<step> by name
DOIT_CONFIG = doit_config()
