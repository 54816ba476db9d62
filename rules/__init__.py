"""The build rules of docker-workflow: one module per pipeline step, plus the CLI and task DSL.

Pipeline: ``spec`` (load and validate) -> ``analyze`` -> ``shake`` (bundle) -> ``render``
(runner directory) -> compile and image (later steps). Each step is a pure function of files, so
the doit graph in ``dodo.py`` can cache it by content.
"""
