"""mod_event_socket's frames (byte layouts as FreeSWITCH 1.10 writes them)
and the client command reader.  Pure, no I/O.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar, overload

_T = TypeVar("_T")

AUTH_REQUEST = b"Content-Type: auth/request\n\n"
GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
MAX_COMMAND_BYTES = 1024 * 1024  # FreeSWITCH's read_packet caps at 10 MB


def command_reply(text: str, *extra: tuple[str, str]) -> bytes:
    """``command/reply`` frame: ``Reply-Text`` then any extra headers."""
    lines = ["Content-Type: command/reply", "Reply-Text: " + text]
    lines += ["%s: %s" % pair for pair in extra]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def api_response(body: str) -> bytes:
    """``api/response``: Content-Type before Content-Length (events: reverse)."""
    raw = body.encode("utf-8") or b"-ERR no reply\n"
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(raw) + raw


def disconnect_notice(text: str = GOODBYE) -> bytes:
    raw = text.encode("utf-8")
    return b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(raw) + raw


class Headers(dict[str, str]):
    """Command headers keyed by lower-cased name: FreeSWITCH reads them
    without regard to case (``job-uuid`` is ``Job-UUID``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__((name.lower(), value) for name, value in pairs)
        self.pairs = pairs  # as sent, in order (sendevent keeps them)

    # dict.get's own overloads, the name lower-cased
    @overload
    def get(self, name: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str, /) -> str: ...
    @overload
    def get(self, name: str, default: _T, /) -> str | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class Command(NamedTuple):
    line: str          # "api status", "event plain ALL", ...
    headers: Headers   # lines after the first ("Job-UUID: ..."), caseless
    body: bytes

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0].lower()

    @property
    def arg(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1].strip() if len(parts) > 1 else ""


class CommandTooLong(Exception):
    pass


class CommandReader:
    """Splits client bytes into commands: lines up to a blank line, then
    ``Content-Length`` bytes of body when given.  Like read_packet, blank
    lines before a command are ignored and ``\\r`` is tolerated."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def commands(self):
        while True:
            while self._buf.startswith((b"\r", b"\n")):
                del self._buf[:1]
            end, sep_len = self._find_end()
            if end < 0:
                if len(self._buf) > MAX_COMMAND_BYTES:
                    raise CommandTooLong("no end of command in %d bytes" % len(self._buf))
                return
            lines = self._buf[:end].decode("utf-8", "replace").replace("\r", "").split("\n")
            pairs = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip():
                    pairs.append((name.strip(), value.strip()))
            headers = Headers(pairs)
            length = headers.get("Content-Length", "0")
            need = int(length) if length.isdigit() else 0
            start = end + sep_len
            if len(self._buf) < start + need:
                return
            body = bytes(self._buf[start:start + need])
            del self._buf[:start + need]
            yield Command(lines[0].strip(), headers, body)

    def _find_end(self) -> tuple[int, int]:
        cuts = [(self._buf.find(sep), len(sep)) for sep in (b"\n\n", b"\r\n\r\n")]
        found = [cut for cut in cuts if cut[0] >= 0]
        return min(found) if found else (-1, 0)
