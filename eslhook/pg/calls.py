"""The open calls saved in PostgreSQL (fleet mode): ``calls.OpenCalls`` with its
table in the database instead of open-calls.json.

The table in memory and the hot path are the embedded store's, unchanged
(``observe`` touches a dict); once a second, when it changed, the instance's own
rows are replaced in one transaction (delete, insert), so a reader never sees half
a save and two instances saving at once never undo each other.  A starting
instance reads the union of every instance's rows, per call the copy with the
latest ``sequence`` (in fleet mode the switch's Event-Sequence): the calls any
instance knew open, including those that began while this one was down.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from ..calls import Snapshot
from .database import Database

_UNION = ("SELECT DISTINCT ON (switch, call_id) switch, call FROM open_calls "
          "ORDER BY switch, call_id, (call->>'sequence')::bigint DESC NULLS LAST, "
          "instance = %s DESC")


class PgCallTable:
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, database: Database, instance: str):
        self.database = database
        self.instance = instance

    def __str__(self) -> str:
        return "open calls in " + self.database.location

    def read(self) -> Snapshot | None:
        with self.database.connection() as connection:
            rows = connection.execute(_UNION, (self.instance,)).fetchall()
        switches: dict[str, list[dict]] = {}
        for switch, call in rows:
            switches.setdefault(switch, []).append(call)
        return {"switches": switches}

    def write(self, snapshot: Snapshot) -> None:
        rows = [(self.instance, switch, call["call_id"], Jsonb(call))
                for switch, calls in snapshot["switches"].items() for call in calls]
        with self.database.connection() as connection:
            connection.execute("DELETE FROM open_calls WHERE instance = %s", (self.instance,))
            with connection.cursor() as cursor:
                cursor.executemany("INSERT INTO open_calls (instance, switch, call_id, call) "
                                   "VALUES (%s, %s, %s, %s)", rows)
