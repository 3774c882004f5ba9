"""Length-prefixed frames over the runner's Unix socket."""

import socket
import struct
import threading
from typing import Any, Dict, Optional, Tuple

from . import messages, wire

MAX_FRAME_BYTES = 256 << 20


class Connection:
    """One connection to cog-server. send() may be called from any thread."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._reader = sock.makefile("rb", buffering=1 << 16)
        self._write_lock = threading.Lock()

    @classmethod
    def connect(cls, path: str) -> "Connection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls(sock)

    def send(self, name: str, fields: Dict[str, Any]) -> None:
        payload = wire.encode(messages.RUNNER_MESSAGE, {name: fields})
        frame = struct.pack(">I", len(payload)) + payload
        with self._write_lock:
            self._sock.sendall(frame)

    def receive(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """The next server message as (name, fields); None when the server closed."""
        header = self._reader.read(4)
        if not header:
            return None
        if len(header) < 4:
            raise wire.DecodeError("connection closed inside a frame header")
        (size,) = struct.unpack(">I", header)
        if size > MAX_FRAME_BYTES:
            raise wire.DecodeError("frame of %d bytes is over the limit" % size)
        payload = self._reader.read(size)
        if len(payload) < size:
            raise wire.DecodeError("connection closed inside a frame")
        message = wire.decode(messages.SERVER_MESSAGE, payload)
        name = messages.which(message)
        return name, message.get(name, {})

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
