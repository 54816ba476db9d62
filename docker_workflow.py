#!/usr/bin/env python3
"""``python docker_workflow.py ...`` is the same as the ``docker-workflow`` command."""

import sys

from rules.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
