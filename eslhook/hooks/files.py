"""hooks.yaml on disk: reads that can tell a file being written, and writes
that never land on a hand edit.

Everything here runs in a worker thread (no gevent calls, no logging).

A hand edit may truncate the file in place and write it slowly (``cat >``,
many editors).  A read during that is not the truth: the store compares two
``FileState`` reads some ms apart (``same_as``).  A write goes to a temp file
created 0600 and is renamed over the path only if the path still holds the
inode and bytes eslhook last read; after the rename the replaced inode is read
again through the descriptor held open: had a writer truncated it meanwhile,
its text went there, and ``replace_if_unchanged`` says so (``displaced``) so
the store can put that text back.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

FileSignature = tuple[int, int, int]  # (mtime_ns, size, inode)
FILE_MODE = 0o600                      # hooks.yaml holds signing secrets


@dataclass(frozen=True)
class FileState:
    """One read of the file: its bytes (None if missing or unreadable) and stat."""
    raw: bytes | None
    signature: FileSignature | None
    error: str | None = None          # why it could not be read
    digest: str | None = None         # sha256 of raw

    @property
    def inode(self) -> int | None:
        return None if self.signature is None else self.signature[2]

    def same_as(self, other: "FileState") -> bool:
        """Size, mtime, inode and bytes all equal: nobody wrote in between."""
        return (self.signature == other.signature and self.raw == other.raw
                and self.error == other.error)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_signature(path: Path) -> FileSignature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def read_state(path: Path) -> FileState:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return FileState(None, None, "file not found")
    except OSError as exc:
        return FileState(None, None, "cannot read: %s" % exc.strerror)
    try:
        return read_fd_state(fd)
    except OSError as exc:    # a directory opens, but does not read
        return FileState(None, None, "cannot read: %s" % exc.strerror)
    finally:
        os.close(fd)


def read_fd_state(fd: int) -> FileState:
    """The file behind ``fd`` (also one already replaced by a rename)."""
    st = os.fstat(fd)
    chunks, offset = [], 0
    while True:
        chunk = os.pread(fd, max(st.st_size - offset, 0) + 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    raw = b"".join(chunks)
    return FileState(raw, (st.st_mtime_ns, st.st_size, st.st_ino), digest=sha256(raw))


def write_atomically(path: Path, data: str | bytes) -> FileSignature | None:
    """Temp file in the same directory, created 0600 (whatever the umask: mkstemp
    asks for 0600 and a umask only takes bits away), fsync, rename, fsync the
    directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _rename_into_place(_written_temp(path, data), path)
    return file_signature(path)


@dataclass(frozen=True)
class Displaced:
    """The inode a rename replaced, kept open (the caller closes ``fd``): a
    writer that opened the file before the rename writes there."""
    fd: int
    held: FileState          # what it held when replaced
    changed: bool            # and it was written to during the rename already


@dataclass(frozen=True)
class Replaced:
    signature: FileSignature | None = None     # of the file written
    displaced: Displaced | None = None         # None: nothing was written


def replace_if_unchanged(path: Path, data: str | bytes, inode: int | None,
                         digest: str | None) -> Replaced:
    """Write ``data`` unless the path no longer holds ``inode`` with bytes of
    ``digest`` (then nothing is written)."""
    try:
        old = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Replaced()
    keep_open = False
    try:
        before = read_fd_state(old)
        if before.inode != inode or before.digest != digest:
            return Replaced()
        tmp = _written_temp(path, data)
        # the last look, as close to the rename as it gets
        if file_signature(path) != before.signature:
            _unlink(tmp)
            return Replaced()
        _rename_into_place(tmp, path)
        keep_open = True
        return Replaced(file_signature(path), Displaced(
            old, before, not read_fd_state(old).same_as(before)))
    finally:
        if not keep_open:
            os.close(old)


def _written_temp(path: Path, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=".%s." % path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _rename_into_place(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse: the rename is still atomic
        pass
    finally:
        os.close(fd)
