"""Length-prefixed frames over the runner's Unix socket.

Single-threaded by design: the runner's main thread both reads frames and runs
the predictor (a handoff between Python threads costs ~25 us each way). While
user code runs, the socket raises SIGIO at the main thread so that a Cancel can
interrupt it; `receive_nowait` drains what has arrived without blocking.
"""

import collections
import fcntl
import os
import socket
import struct
import threading
from typing import Any, Deque, Dict, List, Optional, Tuple

from . import messages, wire

MAX_FRAME_BYTES = 256 << 20
_HEADER = struct.Struct(">I")

# fcntl constants Python does not name (Linux).
_F_SETOWN_EX = getattr(fcntl, "F_SETOWN_EX", 15)
_F_OWNER_TID = 0

Frame = Tuple[str, Dict[str, Any]]


class ConnectionClosed(Exception):
    pass


class Connection:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = bytearray()
        self._frames: Deque[Frame] = collections.deque()
        self._closed = False
        self._send_lock = threading.Lock()  # predictor threads print too
        self._sender = 0  # the thread inside sendall: a frame must never be torn

    @classmethod
    def connect(cls, path: str) -> "Connection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls(sock)

    def fileno(self) -> int:
        return self._sock.fileno()

    def signal_on_input(self) -> None:
        """Asks the kernel for SIGIO, at the calling (main) thread, when bytes arrive."""
        fd = self._sock.fileno()
        try:
            fcntl.fcntl(fd, _F_SETOWN_EX, struct.pack("ii", _F_OWNER_TID, threading.get_native_id()))
        except OSError:
            fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)

    def send(self, name: str, fields: Dict[str, Any]) -> None:
        payload = wire.encode(messages.RUNNER_MESSAGE, {name: fields})
        frame = _HEADER.pack(len(payload)) + payload
        with self._send_lock:
            self._sender = threading.get_ident()
            try:
                self._sock.sendall(frame)
            finally:
                self._sender = 0

    def sending_on_this_thread(self) -> bool:
        return self._sender == threading.get_ident()

    def _parse(self) -> None:
        while len(self._buffer) >= 4:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME_BYTES:
                raise wire.DecodeError("frame of %d bytes is over the limit" % size)
            if len(self._buffer) < 4 + size:
                return
            payload = bytes(self._buffer[4:4 + size])
            del self._buffer[:4 + size]
            message = wire.decode(messages.SERVER_MESSAGE, payload)
            name = messages.which(message)
            self._frames.append((name, message.get(name, {})))

    def receive(self) -> Optional[Frame]:
        """The next server message as (name, fields); None once the server closed."""
        while not self._frames:
            if self._closed:
                return None
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                self._closed = True
                if self._buffer:
                    raise wire.DecodeError("connection closed inside a frame")
                return None
            self._buffer += chunk
            self._parse()
        return self._frames.popleft()

    def receive_nowait(self) -> List[Frame]:
        """Every whole frame available now, without blocking. Raises ConnectionClosed at EOF."""
        while not self._closed:
            try:
                chunk = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                self._closed = True
                break
            self._buffer += chunk
        self._parse()
        frames = list(self._frames)
        self._frames.clear()
        if not frames and self._closed:
            raise ConnectionClosed()
        return frames

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
