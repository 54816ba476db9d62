"""The user's files: JSON and YAML reading, the schemas, the workflow spec, the tool registry
and its formats, the sub-workflow tree. Nothing here builds anything."""
