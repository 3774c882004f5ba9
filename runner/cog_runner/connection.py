"""Length-prefixed frames over the runner's Unix socket.

Single-threaded by design: the runner's main thread both reads frames and runs
the predictor (a handoff between Python threads costs ~25 us each way). While
user code runs, the socket raises SIGIO at the main thread so that a Cancel can
interrupt it; `receive_nowait` drains what has arrived without blocking.
"""

import collections
import fcntl
import json
import os
import socket
import struct
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import messages, wire

# The largest frame either side takes unless the server's Setup says otherwise
# (the server's own default, server/frame_io.h kMaxFrameBytes).
MAX_FRAME_BYTES = 256 << 20
MIN_SEND_LIMIT = 4096
_HEADER = struct.Struct(">I")
_MAX_HEADER_SIZE = (1 << 32) - 1
_MAX_IOV = 64
_SOCKET_BUFFER_BYTES = 4 << 20
# A frame this large is read straight into a buffer of its own (recv_into), not
# gathered piece by piece in the shared buffer.
_LARGE_FRAME = 64 << 10
# Frames sent with hold=True (Predict.batch_outputs) go out together once this
# many are held, this many bytes, or this many seconds after the first.
_HOLD_FRAMES = 8
_HOLD_BYTES = 64 << 10
_HOLD_SECONDS = 0.05
# Short str items held for one Output frame (hold_text_item): at most this
# many characters each, so that one item's JSON (at worst 12 bytes a
# character: an astral one as two \u escapes) always fits the smallest frame
# limit (MIN_SEND_LIMIT) with room to spare.
TEXT_ITEM_CHARS = 256
_TEXT_ITEM_BOUND = 12
# ... and at most this many to a frame, so that the server parses a batch
# while the generator goes on. 25 was best while the runner's Python ran for
# each item (~3 us each; the server's reader slept through a generator sent in
# one frame). Since a sync generator's items are taken several at a time by C
# code (Worker._take_text_batched), 100 short items take ~20 us, and fewer
# frames won: generator of 100, wrk p50 in three interleaved rounds, 451 / 483
# / 553 us with 25 to a frame, 379 / 429 / 484 with 100 (server and runner
# CPU per request ~15% lower; also without --busy-poll-us).
HOLD_ITEMS = 100

# The JSON of held str items: one encoder, not one made by each json.dumps()
# with arguments (~8 k instructions of the ~85 k a batch of 25 tokens costs).
_items_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# Looked up once: send_frame runs for every item a client streams.
_get_ident = threading.get_ident

# A plain int: `flags & socket.MSG_DONTWAIT` (an IntFlag) runs enum's Python
# __and__, on every read.
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)

# fcntl constants Python does not name (Linux).
_F_SETOWN_EX = getattr(fcntl, "F_SETOWN_EX", 15)
_F_OWNER_TID = 0

Frame = Tuple[str, Dict[str, Any]]


class ConnectionClosed(Exception):
    pass


class FrameTooLarge(Exception):
    """A frame the server would not take: nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("a frame of %d bytes is over the limit of %d" % (size, limit))
        self.size = size
        self.limit = limit


# A recovered id longer than this is no id the server made: it is not echoed back.
_MAX_SALVAGED_ID = 4096


def _bad_frame(error: str, payload: Any) -> Frame:
    """What a frame that does not decode becomes: reported, never raised."""
    salvaged = wire.salvage(payload, (2, 1)) or b""
    return ("bad_frame", {"error": error, "id": salvaged if len(salvaged) <= _MAX_SALVAGED_ID else b""})


class Connection:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        try:
            # A large output crosses in one or two sends rather than five or
            # more rounds of 208 KiB, each waking the server (the kernel caps
            # this at net.core.wmem_max).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER_BYTES)
        except OSError:
            pass
        self._buffer = bytearray()
        self._frames: Deque[Frame] = collections.deque()
        self._closed = False
        self._discard = 0  # bytes still to skip of a frame over the limit
        self._large: Optional[bytearray] = None  # a large frame being read, and how much of it is
        self._large_filled = 0
        # A blocking read may have left bytes behind it that came while this
        # thread waited in recv: the kernel raises no SIGIO for those.
        self._behind_unread = False
        self._last_wanted = 0  # what the last _read_some() asked recv() for
        self.max_send_bytes = MAX_FRAME_BYTES
        self.max_receive_bytes = MAX_FRAME_BYTES
        self._send_lock = threading.Lock()  # predictor threads print too
        self._sender = 0  # the thread inside sendall: a frame must never be torn
        self._held = bytearray()  # frames sent with hold=True, not yet on the socket
        self._held_count = 0
        self._held_since = 0.0
        # Short str items of one prediction, held to go out as one Output
        # frame (value_items) ahead of anything sent after them.
        self._items: List[str] = []
        self._items_id = ""
        self._items_bound = 0  # the most bytes their JSON can take
        self._items_limit = min(_HOLD_BYTES, self.max_send_bytes // 2)  # they go out past this
        # Encodes the Output frame of held items for the prediction they are of.
        self._items_encoder: Optional[Callable[[bytes], bytearray]] = None
        self._items_encoder_id = None

    @classmethod
    def connect(cls, path: str) -> "Connection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @classmethod
    def connect_when_listening(cls, path: str, on_wait: Callable[[], None]) -> "Connection":
        """Connects once a server listens on `path`: a sidecar's runner may start
        before cog-server has made its socket (no file yet), or while a server
        that died left its socket behind (refused). `on_wait` is called once,
        when the first try fails that way; other errors are raised."""
        delay = 0.02
        waited = False
        while True:
            try:
                return cls.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                if not waited:
                    waited = True
                    on_wait()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

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

    def set_send_limit(self, limit: int) -> None:
        """The largest frame the server takes (Setup.max_frame_bytes; 0: the default).
        Never under MIN_SEND_LIMIT: the server reads frames that small whatever
        its output limit, and a Done that says why an output failed must fit."""
        if limit <= 0:
            limit = MAX_FRAME_BYTES
        self.max_send_bytes = max(MIN_SEND_LIMIT, min(limit, _MAX_HEADER_SIZE))
        self._items_limit = min(_HOLD_BYTES, self.max_send_bytes // 2)

    def send(self, name: str, fields: Dict[str, Any], hold: bool = False) -> None:
        """Sends one frame whole; FrameTooLarge (nothing sent) if it is over the limit.
        With `hold`, a small frame may wait to go out with the next ones: until
        a frame sent without it, _HOLD_FRAMES frames, _HOLD_BYTES bytes, or
        _HOLD_SECONDS after the first held (checked as each is sent)."""
        frame = wire.encode_member_frame(messages.RUNNER_MESSAGE, name, fields, wire.LARGE_PAYLOAD)
        if frame is None:
            # A large output or log: sent from where it is, not copied into the frame.
            parts, size = wire.encode_frame_parts(messages.RUNNER_MESSAGE, {name: fields})
        else:
            parts, size = None, len(frame)
        if parts is None:
            self.send_frame(frame, hold)
            return
        if size - 4 > self.max_send_bytes:
            raise FrameTooLarge(size - 4, self.max_send_bytes)
        with self._send_lock:
            self._sender = threading.get_ident()
            try:
                self._send_parts([self._take_held()] + parts if self._held or self._items else parts)
            finally:
                self._sender = 0

    def send_frame(self, frame: bytearray, hold: bool = False) -> None:
        """send() of a frame already encoded (length prefix included)."""
        if len(frame) - 4 > self.max_send_bytes:
            raise FrameTooLarge(len(frame) - 4, self.max_send_bytes)
        with self._send_lock:
            self._sender = _get_ident()
            try:
                if hold or self._held or self._items:
                    now = time.monotonic()
                    if not self._held and not self._items:
                        self._held_since = now
                    if self._items:
                        self._hold_items()  # they came first
                    self._held += frame
                    self._held_count += 1
                    if (hold and self._held_count < _HOLD_FRAMES and len(self._held) < _HOLD_BYTES
                            and now - self._held_since < _HOLD_SECONDS):
                        return
                    frame = self._take_held()
                self._sock.sendall(frame)
            finally:
                self._sender = 0

    def hold_text_item(self, prediction_id: str, item: str) -> None:
        """Holds a str item of at most TEXT_ITEM_CHARS characters, of a
        prediction whose Predict allowed batch_text_items: the items held
        together go out as one Output frame (value_items), in order with the
        frames send() holds, before any frame sent after them, and at
        HOLD_ITEMS, _HOLD_BYTES or _HOLD_SECONDS after the first held
        (checked as each comes)."""
        with self._send_lock:
            self._hold_text_item(prediction_id, item, time.monotonic())

    def hold_text_items(self, prediction_id: str, items: List[str],
                        since: Optional[float] = None) -> None:
        """hold_text_item() of each of `items` (each a str of 1 to
        TEXT_ITEM_CHARS characters) in turn, but a run of them that takes the
        held items to no limit but HOLD_ITEMS (the common case: short tokens)
        joins them in one step. The frames are those of hold_text_item()
        called for each, except when _HOLD_SECONDS has passed: then the run
        goes out whole with the held items, not just its first. `since`: when
        the caller got the first of `items` (time.monotonic()), if it kept
        them a while; _HOLD_SECONDS counts from there."""
        with self._send_lock:
            if self._items and self._items_id != prediction_id:
                self._hold_items()
            now = time.monotonic()
            oldest = now if since is None else since
            start, count = 0, len(items)
            while start < count:
                room = HOLD_ITEMS - len(self._items)
                part = items if start == 0 and count <= room else items[start:start + room]
                start += len(part)
                bound = _TEXT_ITEM_BOUND * sum(map(len, part)) + 3 * len(part)
                if self._items_bound + bound + len(self._held) >= self._items_limit:
                    for item in part:  # where the bytes run out: item by item
                        self._hold_text_item(prediction_id, item, now)
                    continue
                if (not self._items and not self._held) or oldest < self._held_since:
                    self._held_since = oldest
                oldest = now
                self._items += part
                self._items_id = prediction_id
                self._items_bound += bound
                if len(self._items) >= HOLD_ITEMS or now - self._held_since >= _HOLD_SECONDS:
                    self._send_held()

    def _hold_text_item(self, prediction_id: str, item: str, now: float) -> None:
        """hold_text_item() with the lock held."""
        bound = _TEXT_ITEM_BOUND * len(item) + 3  # its quotes and the comma after it
        # A frame of its own for the items so far if this one is of another
        # prediction, or would take their frame past the limit.
        if self._items and (self._items_id != prediction_id
                            or self._items_bound + bound > self._items_limit):
            self._hold_items()
        if not self._items and not self._held:
            self._held_since = now
        self._items.append(item)
        self._items_id = prediction_id
        self._items_bound += bound
        if (self._items_bound + len(self._held) < self._items_limit
                and len(self._items) < HOLD_ITEMS and now - self._held_since < _HOLD_SECONDS):
            return
        self._send_held()

    def _send_held(self) -> None:
        self._sender = _get_ident()
        try:
            self._sock.sendall(self._take_held())
        finally:
            self._sender = 0

    def _hold_items(self) -> None:
        """The held str items, as one Output frame at the end of the held frames."""
        items, self._items, self._items_bound = self._items, [], 0
        try:
            value = _items_json(items).encode()
        except UnicodeEncodeError:  # a lone surrogate: JSON's \ud800 escape says what it is
            value = json.dumps(items, separators=(",", ":")).encode()
        # Always one frame (no `large`): the bound keeps it within the limit.
        # From an encoder that has the prediction's id encoded already.
        if self._items_encoder_id != self._items_id:
            self._items_encoder = wire.member_encoder(
                messages.RUNNER_MESSAGE, "output", {"id": self._items_id, "value_items": True},
                "value_json")
            self._items_encoder_id = self._items_id
        self._held += self._items_encoder(value)
        self._held_count += 1

    def _take_held(self) -> bytearray:
        if self._items:
            self._hold_items()
        held = self._held
        self._held = bytearray()
        self._held_count = 0
        return held

    def _send_parts(self, parts: List[Any]) -> None:
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        while views:
            sent = self._sock.sendmsg(views[:_MAX_IOV])
            while sent:
                if sent >= len(views[0]):
                    sent -= len(views.pop(0))
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def sending_on_this_thread(self) -> bool:
        return self._sender == threading.get_ident()

    def _parse(self) -> None:
        while True:
            if self._discard:
                skipped = min(self._discard, len(self._buffer))
                del self._buffer[:skipped]
                self._discard -= skipped
                if self._discard:
                    return
            if len(self._buffer) < 4:
                return
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self.max_receive_bytes:
                # Skipped as it arrives, never held: the frames after it are fine.
                self._frames.append(_bad_frame(
                    "a frame of %d bytes is over the runner's limit of %d" % (size, self.max_receive_bytes),
                    self._buffer[4:4 + (1 << 16)]))
                del self._buffer[:4]
                self._discard = size
                continue
            if len(self._buffer) < 4 + size:
                if size >= _LARGE_FRAME:
                    # The rest is read into the frame's own buffer (_read_some).
                    self._large = bytearray(size)
                    self._large_filled = len(self._buffer) - 4
                    self._large[:self._large_filled] = memoryview(self._buffer)[4:]
                    self._buffer.clear()
                return
            payload = self._buffer[4:4 + size]
            del self._buffer[:4 + size]
            self._add_frame(payload)

    def _add_frame(self, payload: bytearray) -> None:
        try:
            self._frames.append(wire.decode_member(messages.SERVER_MESSAGE, payload))
        except wire.DecodeError as e:
            self._frames.append(_bad_frame("%s (in a frame of %d bytes)" % (e, len(payload)), payload))

    def _read_some(self, flags: int = 0) -> int:
        """One recv (blocking unless `flags` say not); 0 at the end of input."""
        large = self._large
        blocking = not flags & _MSG_DONTWAIT
        if large is not None:
            self._last_wanted = len(large) - self._large_filled
            n = self._sock.recv_into(memoryview(large)[self._large_filled:], 0, flags)
            self._large_filled += n
            if self._large_filled == len(large):
                self._large = None
                self._add_frame(large)
                self._parse()
                self._behind_unread = self._behind_unread or blocking  # (a Cancel right behind a large Predict)
            return n
        self._last_wanted = 1 << 16
        chunk = self._sock.recv(1 << 16, flags)
        if chunk:
            self._buffer += chunk
            self._parse()
            self._behind_unread = self._behind_unread or (blocking and len(chunk) == 1 << 16)
        return len(chunk)

    def _inside_frame(self) -> bool:
        return bool(self._buffer) or bool(self._discard) or self._large is not None

    def receive(self) -> Optional[Frame]:
        """The next server message as (name, fields); None once the server closed."""
        while not self._frames:
            if self._closed:
                return None
            if not self._read_some():
                self._closed = True
                if self._inside_frame():
                    raise ConnectionClosed("connection closed inside a frame")
                return None
        return self._frames.popleft()

    def has_frames(self) -> bool:
        """Whether whole frames were read and not yet taken, or bytes may wait
        that no SIGIO announced (no syscall): receive_nowait() has work."""
        return bool(self._frames) or self._behind_unread

    def receive_nowait(self) -> List[Frame]:
        """Every whole frame available now, without blocking. Raises ConnectionClosed at EOF."""
        self._behind_unread = False
        while not self._closed:
            try:
                got = self._read_some(_MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not got:
                self._closed = True
            elif got < self._last_wanted:
                # A short read: nothing was left. Bytes that come after it
                # raise SIGIO or wake the event loop's epoll again; another
                # recv() now would only fail (a syscall and an exception).
                break
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
