"""doit's sqlite3 dependency database, with a full disk reported as such.

doit saves its database when a run ends; on a full disk sqlite raises ``OperationalError``
there, and doit prints its own 26-line traceback. This backend (the same file format as doit's
``sqlite3``, so plain ``doit`` reads it) keeps that failure instead, and
:func:`rules.graph.run.build_targets` reports it in one line: the cache folder is full. The
state is not saved, so the next run redoes what this one did: nothing is marked up to date
that was not written.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3

from doit.dependency import SqliteDB

from rules.errors import UserError
from rules.paths import cache_dir

BACKEND = "sqlite3-guarded"
PLUGIN = f"{__name__}:GuardedSqliteDB"

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

failures: list[str] = []  # what went wrong saving, for the caller of the run


class GuardedSqliteDB(SqliteDB):
    """doit's ``SqliteDB`` whose save failure is kept in :data:`failures`, not raised."""

    desc = "sqlite3, a failure to save kept for the caller"

    def dump(self) -> None:
        try:
            super().dump()
        except sqlite3.Error as error:
            failures.append(str(error))
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()


def cache_full(detail: str) -> UserError:
    """The one message for a cache folder that cannot take more (doit's database, or a step's
    write that failed with ``ENOSPC``)."""
    return UserError(
        f"the cache folder {cache_dir()} is full ({detail}): free space there or choose"
        " another with -o"
    )
