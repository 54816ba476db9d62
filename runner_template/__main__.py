"""``python -m runner_template``: the same entry point the compiled program uses."""

import sys

from runner_template.main import main

sys.exit(main())
