"""The web target: a static site that runs one workflow in the browser, on Pyodide.

``build_site`` (``rules/stages/web/site.py``) is the entry point; the page itself (HTML,
scripts, the Python glue that runs inside Pyodide) lives in ``runner_template/web/``, one
source for the static site and for a service's playground page. The CLI's part is
``rules/cli/web.py``.
"""
