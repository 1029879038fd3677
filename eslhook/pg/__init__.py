"""Fleet mode's PostgreSQL backends (issue 14, docs/fleet.md).

Importing this package does not import the driver: ``dsn`` is pure, and
``eslhook/stores.py`` imports the rest only when ``storage.backend`` is postgresql,
so embedded mode never loads psycopg.
"""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used (the message never shows a password)."""
