"""The ``docker-workflow`` command line (also ``python docker_workflow.py ...``).

Every user-caused failure surfaces as :class:`rules.errors.UserError`: one line per problem on
stderr, a non-zero exit (2 for bad input, 1 otherwise), no traceback. Commands are thin: the
work is in the pipeline modules, reached through the one build graph.
"""

from __future__ import annotations

import errno
import os
import sys

from rules.cli.parser import build_parser
from rules.console import err_console, print_message, set_quiet
from rules.errors import EXIT_FAILED, Interrupted, UserError

# Failures of the machine, not of the program: where the output or a file could not be written.
_OUTPUT_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        set_quiet()
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a full disk or a closed pipe is reported
        return code
    except UserError as error:
        for line in error.lines():
            print_message("error", "red", line)
        return error.exit_code
    except KeyboardInterrupt:
        err_console().print("interrupted")
        return 130
    except Interrupted as stop:
        err_console().print("interrupted")
        return stop.exit_code
    except OSError as error:
        if error.errno not in _OUTPUT_ERRNOS:
            raise
        _drop_stdout()
        where = error.filename or "the output"
        print_message("error", "red", f"writing {where} failed: {os.strerror(error.errno)}")
        return EXIT_FAILED


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit has nowhere to fail
    (it would print "Exception ignored" with a traceback of its own)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
