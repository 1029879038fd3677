"""The open calls saved in PostgreSQL (fleet mode): ``calls.OpenCalls`` with its
table in the database instead of open-calls.json.

The table in memory and the hot path are the embedded store's, unchanged
(``observe`` touches a dict); once a second, when it changed, the whole table is
written in one transaction (delete, insert), so a reader never sees half a save.
This landing keeps one instance's view: several instances sharing one switch
list need the per-call rows merged (docs/fleet.md, what is next).
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from ..calls import Snapshot
from .database import Database


class PgCallTable:
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, database: Database):
        self.database = database

    def __str__(self) -> str:
        return "open calls in " + self.database.location

    def read(self) -> Snapshot | None:
        with self.database.connection() as connection:
            rows = connection.execute(
                "SELECT switch, call FROM open_calls ORDER BY switch, call_id").fetchall()
        switches: dict[str, list[dict]] = {}
        for switch, call in rows:
            switches.setdefault(switch, []).append(call)
        return {"switches": switches}

    def write(self, snapshot: Snapshot) -> None:
        rows = [(switch, call["call_id"], Jsonb(call))
                for switch, calls in snapshot["switches"].items() for call in calls]
        with self.database.connection() as connection:
            connection.execute("DELETE FROM open_calls")
            with connection.cursor() as cursor:
                cursor.executemany("INSERT INTO open_calls (switch, call_id, call) "
                                   "VALUES (%s, %s, %s)", rows)
