"""The tool registry that ships with docker-workflow (installed as ``docker_workflow_tools``).

Each tool is a YAML file (``llm/``, ``executable/``), with the Python of executable tools beside
it; ``rules/registry.py`` finds this folder through the package.
"""
