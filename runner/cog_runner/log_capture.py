"""sys.stdout and sys.stderr of the runner: what the predictor prints goes to the
server as Log frames, line by line, attributed to the prediction that printed it.

A line ends at "\\n", "\\r\\n" or a lone "\\r", as legacy Cog read its captured
output (a text-mode pipe with universal newlines): a progress bar that redraws
itself with "\\r" (tqdm) shows in the logs as one line per redraw, each ending
in "\\n", and the empty lines that "\\r" makes (a redraw starts with one) are
left out, as legacy Cog leaves them out.

The cost is linear in what is printed: text without a line end waits in a list
of pieces, joined once when its line ends; a line that never ends is sent in
pieces of `_MAX_PENDING` characters, so it holds no unbounded memory.
"""

import codecs
import io
import re
import threading
from typing import Any, Callable, Dict, List, Optional

# Past this many characters of one unfinished line, what there is goes out as it is.
_MAX_PENDING = 1 << 20

# "\\r"s that would end empty lines: right after another line end.
_EMPTY_CR = re.compile(r"(?<=[\r\n])\r+")

SendLog = Callable[[str, int, str], None]


class _Pending:
    __slots__ = ("pieces", "size", "after_cr")

    def __init__(self) -> None:
        self.pieces: List[str] = []
        self.size = 0
        self.after_cr = False  # the last line ended at "\r": a "\n" next completes "\r\n"


class LogStream(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr for one source (stdout or stderr)."""

    def __init__(self, owner: Callable[[], str], send_log: SendLog, source: int, original: Any) -> None:
        self._owner = owner
        self._send_log = send_log
        self._source = source
        self._original = original
        self._pending: Dict[str, _Pending] = {}
        # Held while a line is cut and sent, so that the lines of one stream go
        # out in the order they were written, also from several threads.
        self._lock = threading.Lock()
        self._buffer: Optional["_BinaryLogStream"] = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        if not text:
            return 0
        owner = self._owner()
        with self._lock:
            pending = self._pending.get(owner)
            if pending is None:
                pending = self._pending[owner] = _Pending()
            lines = _cut(pending, text)
            if lines:
                self._send_log(owner, self._source, lines)
        return len(text)

    def flush_owner(self, owner: str) -> None:
        """Sends the unfinished line of `owner`, if any: its prediction ended."""
        with self._lock:
            pending = self._pending.pop(owner, None)
            if pending is not None and pending.pieces:
                self._send_log(owner, self._source, "".join(pending.pieces) + "\n")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:
        return "utf-8"

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> "_BinaryLogStream":
        """sys.stdout.buffer: bytes, decoded as UTF-8 into this stream."""
        if self._buffer is None:
            self._buffer = _BinaryLogStream(self)
        return self._buffer

    @property
    def line_buffering(self) -> bool:
        return True


class _BinaryLogStream(io.RawIOBase):
    def __init__(self, text: LogStream) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        with self._lock:
            text = self._decoder.decode(data)
        if text:
            self._text.write(text)
        return len(data)

    def fileno(self) -> int:
        return self._text.fileno()


def _cut(pending: _Pending, text: str) -> str:
    """Adds `text` to `pending`; returns the whole lines it completes, each ending
    in "\\n" ("" if none), or a piece of an overlong unfinished line."""
    if pending.after_cr:
        pending.after_cr = False
        if text[0] == "\n":
            text = text[1:]
            if not text:
                return ""
    end = max(text.rfind("\n"), text.rfind("\r")) + 1
    if not end:
        pending.pieces.append(text)
        pending.size += len(text)
        if pending.size < _MAX_PENDING:
            return ""
        piece = "".join(pending.pieces)
        pending.pieces, pending.size = [], 0
        return piece
    if pending.pieces:
        pending.pieces.append(text[:end])
        lines = "".join(pending.pieces)
        line_start = False
    else:
        lines = text[:end]
        line_start = True
    rest = text[end:]
    pending.pieces, pending.size = ([rest], len(rest)) if rest else ([], 0)
    if "\r" in lines:
        pending.after_cr = not rest and lines[-1] == "\r"
        lines = lines.replace("\r\n", "\n")
        if line_start:
            lines = lines.lstrip("\r")
        lines = _EMPTY_CR.sub("", lines).replace("\r", "\n")
    return lines
