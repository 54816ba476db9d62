"""The ``docker-workflow`` command line (also ``python docker_workflow.py ...``).

Every user-caused failure surfaces as :class:`rules.errors.UserError`: one line per problem on
stderr, a non-zero exit (2 for bad input, 1 otherwise), no traceback. Commands are thin: the
work is in the pipeline modules, reached through the one build graph.
"""

from __future__ import annotations

import sys

from rules.cli.parser import build_parser
from rules.console import err_console, print_message, set_quiet
from rules.errors import UserError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        set_quiet()
    try:
        return args.func(args)
    except UserError as error:
        for line in error.lines():
            print_message("error", "red", line)
        return error.exit_code
    except KeyboardInterrupt:
        err_console().print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
