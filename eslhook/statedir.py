"""``state_dir`` and the files eslhook writes there are private to its user.

The spool holds every payload (caller numbers, custom channel variables) and the
attempt log holds receivers' answers: the directory is 0700 and each file 0600,
created so (not chmod-ed after), whatever the umask.  A directory or file an
older version left looser is tightened once, with a log line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike) -> None:
    """Create ``path`` (and missing parents) with the directory itself 0700."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)


def private_file(path: str | os.PathLike) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (SQLite then opens it
    and gives its -wal and -shm the same mode); tighten it if it exists looser."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError:
        return          # let the caller's own open report it
    os.close(descriptor)
    _tighten(Path(path), FILE_MODE)


def tighten_existing(path: str | os.PathLike) -> None:
    """Tighten a file an older version left looser than 0600 (absent: nothing)."""
    if os.path.exists(path):
        _tighten(Path(path), FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        os.chmod(path, mode)
        log.info("%s was mode %o: now %o (readable by eslhook's user only)", path, current,
                 mode)
