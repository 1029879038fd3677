"""A test-local ESL server that sends exact bytes (the fake switch re-frames).

``RawEslServer(script)`` listens on 127.0.0.1, greets each connection with
``auth/request``, answers every command with ``+OK``, and after the first
``event ...`` subscription writes ``script`` (bytes, or a list of chunks) as
is.  It then keeps the connection open (``close_after=False``) or closes it.
Each connection gets the script again; ``connections`` counts them.
"""

from __future__ import annotations

import gevent
import gevent.server
import gevent.socket

AUTH_REQUEST = b"Content-Type: auth/request\n\n"


def reply(text: str) -> bytes:
    return b"Content-Type: command/reply\nReply-Text: %s\n\n" % text.encode()


def read_command(stream) -> bytes | None:
    """One client command (its lines up to the blank one), None at EOF."""
    lines = []
    for line in iter(stream.readline, b""):
        if line == b"\n":
            return b"".join(lines)
        lines.append(line)
    return None


class RawEslServer:
    def __init__(self, script: bytes | list[bytes], *, close_after: bool = False):
        self.script = [script] if isinstance(script, bytes) else list(script)
        self.close_after = close_after
        self.connections = 0
        self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._serve)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self._server.server_port

    def start(self) -> "RawEslServer":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def _serve(self, sock, _address) -> None:
        self.connections += 1
        sock.sendall(AUTH_REQUEST)
        commands = sock.makefile("rb")
        try:
            for _ in range(100):               # bounded: a few commands per test
                command = read_command(commands)
                if command is None:
                    return
                if command.startswith(b"exit"):
                    sock.sendall(reply("+OK bye"))
                    return
                sock.sendall(reply("+OK accepted"))
                if command.startswith(b"event "):
                    self._play(sock)
                    if self.close_after:
                        return
        except OSError:
            return
        finally:
            commands.close()
            sock.close()

    def _play(self, sock) -> None:
        for chunk in self.script:
            sock.sendall(chunk)
            gevent.sleep(0)
