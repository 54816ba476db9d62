"""``python -m rules.cli ...`` is the same as the ``docker-workflow`` command."""

import sys

from rules.cli.main import main

sys.exit(main())
