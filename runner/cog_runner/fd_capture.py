"""Output written below Python: file descriptors 1 and 2 of the runner.

C extensions, subprocesses (`subprocess.run(["ffmpeg", ...])`), libc's printf
and `os.write(1, ...)` write to the process's file descriptors, not to
sys.stdout. The runner points fds 1 and 2 at pipes and one thread reads them;
what it reads is cut into lines as sys.stdout's text is (log_capture) and sent
as Log frames of the prediction that runs (of setup while it runs; with no
prediction id when nothing can own it, which the server writes to its own log).

Attribution is exact at the end: before a prediction's Done goes out,
`settle()` flushes libc's buffers, lets the reader finish the chunk it holds,
and reads and sends what the pipes still hold itself, so no line of one
prediction can arrive in the next. It counts bytes, not markers: the pipes
hold FIONREAD bytes, the reader has read `_read` and sent `_sent`; when
nothing is pending it costs one poll() and no wake-up. (What a process that outlived the previous
prediction writes after it ended, before the next one starts, is attributed to
the next one: nothing tells them apart.)

The reader never stops while the runner lives: if it did, a predictor writing
more than a pipe holds (64 KiB) would block for ever.

The server's own log is never written to by the predictor: it keeps fds 1 and 2
of the runner's parent (the guardian, which never writes there).
"""

import codecs
import ctypes
import fcntl
import os
import select
import struct
import termios
import threading
from typing import Callable, Dict, Optional

from .log_capture import _cut, _Pending

SendLog = Callable[[str, int, str], None]

_READ_BYTES = 1 << 16


def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


class FdCapture:
    """Fds 1 and 2 into pipes, read on a thread of their own."""

    def __init__(self, send_log: SendLog, sources: Dict[int, int]) -> None:
        """`sources` maps 1 and 2 to the Log source each is sent as."""
        self._send_log = send_log
        self._sources = sources
        self._cond = threading.Condition(threading.Lock())
        self._owner = ""           # guarded by _cond: whom what is read now belongs to
        self._pipes: Dict[int, int] = {}  # read end -> the fd it captures (1 or 2)
        self._read: Dict[int, int] = {}   # bytes read from each pipe
        self._sent: Dict[int, int] = {}   # of those, bytes cut into lines and sent
        self._decoders = {}
        self._pending: Dict[int, Dict[str, _Pending]] = {}
        self._cut_lock = threading.Lock()  # the line state, shared with settle()'s flush
        self._alive = False
        self._readable_now = select.poll()
        libc = _libc()
        self._fflush = getattr(libc, "fflush", None) if libc is not None else None
        self.original_stderr = -1

    def start(self) -> None:
        """Redirects fds 1 and 2 (after saving the originals) and starts the reader."""
        self.original_stderr = os.dup(2)  # for the runner's own last words
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)  # inheritable: subprocesses write into the pipe
            os.close(write_end)
            os.set_blocking(read_end, False)
            self._pipes[read_end] = fd
            self._read[read_end] = self._sent[read_end] = 0
            self._decoders[read_end] = codecs.getincrementaldecoder("utf-8")("replace")
            self._pending[read_end] = {}
            self._readable_now.register(read_end, select.POLLIN)
        _line_buffer_libc_stdout()
        self._alive = True
        threading.Thread(target=self._run, name="cog-fd-capture", daemon=True).start()

    # ---- the main thread ----

    def attribute_to(self, owner: str) -> None:
        """What is written from now on is `owner`'s (a prediction starts)."""
        with self._cond:
            self._owner = owner

    def settle(self, owner: str, timeout: float = 10.0) -> None:
        """`owner` is done (a prediction, or setup for ""): sends everything
        written to fds 1 and 2 until now as its own, with its unfinished last
        line; what is written from now on belongs to no prediction ("")."""
        if not self._alive:
            return
        if self._fflush is not None:
            self._fflush(None)  # what printf holds, into the pipe
        with self._cond:
            # Usually nothing is in flight: one poll() tells, for both pipes.
            if self._read != self._sent or self._readable_now.poll(0):
                # The chunk the reader holds was written first: it goes first.
                self._cond.wait_for(lambda: not self._alive or self._read == self._sent, timeout)
                # Then this thread takes what the pipes hold itself (waking the
                # reader for it would cost two thread switches): the reader
                # cannot read meanwhile, it needs _cond for that.
                for read_end in self._pipes:
                    target = self._read[read_end] + _buffered(read_end)
                    while self._read[read_end] < target:
                        try:
                            data = os.read(read_end, _READ_BYTES)
                        except BlockingIOError:
                            break
                        if not data:
                            break
                        self._read[read_end] += len(data)
                        try:
                            self._handle(read_end, data, self._owner)
                        except Exception:  # noqa: BLE001 - as the reader does
                            pass
                        self._sent[read_end] += len(data)
            self._owner = ""
        if any(owner in by_owner for by_owner in self._pending.values()):
            with self._cut_lock:
                for read_end, by_owner in self._pending.items():
                    pending = by_owner.pop(owner, None)
                    if pending is not None and pending.pieces:
                        self._send_log(owner, self._sources[self._pipes[read_end]],
                                       "".join(pending.pieces) + "\n")

    # ---- the reader thread ----

    def _run(self) -> None:
        poller = select.poll()
        for read_end in self._pipes:
            poller.register(read_end, select.POLLIN)
        try:
            while True:
                for read_end, _ in poller.poll():
                    with self._cond:
                        try:
                            data = os.read(read_end, _READ_BYTES)
                        except BlockingIOError:
                            continue
                        owner = self._owner
                        self._read[read_end] += len(data)
                    if not data:  # every write end closed: the runner is ending
                        poller.unregister(read_end)
                        continue
                    try:
                        self._handle(read_end, data, owner)
                    except Exception:  # noqa: BLE001 - lose these lines, never the reader
                        pass
                    with self._cond:
                        self._sent[read_end] += len(data)
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._alive = False
                self._cond.notify_all()

    def _handle(self, read_end: int, data: bytes, owner: str) -> None:
        text = self._decoders[read_end].decode(data)
        if not text:
            return
        with self._cut_lock:
            by_owner = self._pending[read_end]
            pending = by_owner.get(owner)
            if pending is None:
                pending = by_owner[owner] = _Pending()
            lines = _cut(pending, text)
            if lines:
                self._send_log(owner, self._sources[self._pipes[read_end]], lines)


def _buffered(read_end: int) -> int:
    """Bytes waiting in a pipe."""
    return struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, b"\0\0\0\0"))[0]


def _line_buffer_libc_stdout() -> None:
    """libc buffers stdout fully when it is a pipe: a printf line would wait for
    4 KiB more. Line-buffered, as on a terminal, it reaches the logs as it is
    printed."""
    libc = _libc()
    if libc is None:
        return
    try:
        stdout = ctypes.c_void_p.in_dll(libc, "stdout")
        libc.setvbuf(stdout, None, 1, 0)  # _IOLBF
    except (AttributeError, ValueError, OSError):
        pass
