"""What a predictor returns (or yields, or records as a metric), as the JSON text
a frame carries.

JSON has no NaN or Infinity: json.dumps would write the bare words NaN and
Infinity, which JSON parsers refuse, so the value used to arrive as null in a
prediction that "succeeded". Such values are refused here instead, saying where
they sit. So are values too large for one frame, naming the server's limit.
"""

import contextvars
import dataclasses
import enum
import json
import math
import os
import pathlib
import stat
import sys
from typing import Any, Dict, List, Optional

from cog.types import Secret


class OutputError(ValueError):
    """An output that cannot be sent: its prediction fails with this message."""


class _NotFinite(Exception):
    def __init__(self, pointer: str, value: float) -> None:
        super().__init__(pointer)
        self.pointer = pointer
        self.value = value


def too_large(where: str, size: int, limit: int, form: str = "JSON") -> OutputError:
    return OutputError(
        "%s is %d bytes as %s, over the limit of %d bytes that cog-server takes from its runner "
        "(raise it with cog-server --max-output-bytes, or return a cog.Path: files travel apart)"
        % (where, size, form, limit))


class SharedDir:
    """A prediction's directory on the volume a runner started elsewhere (a
    sidecar) shares with cog-server (Predict.output_dir). The server reads Path
    outputs only from under that volume's directory, so a returned file that is
    elsewhere (the model's /tmp, its working directory) is first linked or
    copied in here, under its own name; once for each file in a prediction."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._real = os.path.realpath(path)
        self._placed: Dict[str, str] = {}

    def place(self, path: str) -> str:
        real = os.path.realpath(path)
        if real.startswith(self._real + os.sep):  # its input files, or written here
            return self.path + real[len(self._real):]  # as the server named the directory
        placed = self._placed.get(real)
        if placed is not None:
            return placed
        try:
            mode = os.stat(real).st_mode
        except OSError as e:
            raise OutputError("cannot read the output file %s: %s" % (path, e.strerror)) from None
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise OutputError("the output file %s is %s: return the Path of a file" % (path, what))
        target = os.path.join(self.path, "out%d" % len(self._placed),
                              os.path.basename(path) or "file")
        try:
            # The server made the prediction's directory; without it (the
            # volume not mounted here, or the prediction already ended and
            # its directory removed) the copy fails: never made here.
            try:
                os.mkdir(os.path.dirname(target))
            except FileExistsError:
                pass
            try:
                os.link(real, target)  # the same file, nothing copied (another filesystem: EXDEV)
            except OSError:
                import shutil
                shutil.copyfile(real, target)
        except OSError as e:
            raise OutputError(
                "cannot copy the output file %s into %s, the directory cog-server shares with this "
                "runner (cog-server --files-dir: a volume both containers mount at the same path): %s"
                % (path, self.path, e.strerror or e)) from None
        self._placed[real] = target
        return target


# Set for each prediction (Worker._enter_scope); None: files are named where they are.
shared_dir: "contextvars.ContextVar[Optional[SharedDir]]" = contextvars.ContextVar(
    "cog_shared_dir", default=None)


def encode_output(value: Any, files: Optional[List[str]] = None, where: str = "output") -> Any:
    """A value the predictor returned, as JSON-ready data. Paths become file://
    URLs, and their JSON pointers (RFC 6901) are appended to `files`: only those
    are files for the server; a str that looks like a file URL stays a str.
    OutputError names `where` (e.g. output[2]) for a NaN or infinite float."""
    try:
        return _encode(value, files, "")
    except _NotFinite as e:
        raise OutputError("%s is %r: JSON cannot carry NaN or Infinity; return None or a string instead"
                          % (_describe(value, e.pointer, where), e.value)) from None


# One encoder for every output: json.dumps() with an argument makes one a call.
_output_json = json.JSONEncoder(allow_nan=False).encode


def encode_output_json(value: Any, where: str = "output", limit: Optional[int] = None,
                       files: Optional[List[str]] = None) -> bytes:
    text = _output_json(encode_output(value, files, where)).encode()
    if limit is not None and len(text) > limit:
        raise too_large(where, len(text), limit)
    return text


# A str travels as its UTF-8 bytes in these fields instead of as JSON: json.dumps
# of a 1 MiB string takes milliseconds (more with quotes, newlines or non-ASCII
# to escape), str.encode() microseconds, and the server reads it without parsing.
TEXT_FIELDS = {"value_json": "value_text", "output_json": "output_text"}


def output_text(value: Any, where: str = "output", limit: Optional[int] = None) -> Optional[bytes]:
    """The UTF-8 bytes a non-empty str travels as (TEXT_FIELDS); None for any
    other value, which travels as JSON. OutputError if they are over `limit`."""
    if type(value) is not str or not value:
        return None
    try:
        text = value.encode()
    except UnicodeEncodeError:
        return None  # a lone surrogate: JSON's \ud800 escape says what it is
    if limit is not None and len(text) > limit:
        raise too_large(where, len(text), limit, "UTF-8")
    return text


def encode_output_fields(value: Any, value_field: str, where: str = "output",
                         limit: Optional[int] = None) -> Dict[str, Any]:
    """The fields of an Output or Done frame that carry `value`."""
    text = output_text(value, where, limit)
    if text is not None:
        return {TEXT_FIELDS[value_field]: text}
    files: List[str] = []
    fields: Dict[str, Any] = {value_field: encode_output_json(value, where, limit, files)}
    if files:
        fields["files_json"] = json.dumps(files).encode()
    return fields


def _encode(value: Any, files: Optional[List[str]], pointer: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotFinite(pointer, float(value))
        return value
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, os.PathLike):
        path = pathlib.Path(os.fspath(value)).absolute()
        if files is not None:
            files.append(pointer)
            shared = shared_dir.get()
            if shared is not None:
                return pathlib.Path(shared.place(str(path))).as_uri()
        return path.as_uri()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encode(v, files, "%s/%d" % (pointer, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _encode(v, files, pointer + "/" + _pointer_token(k)) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name), files, pointer + "/" + _pointer_token(f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):  # as legacy Cog: its value
        return _encode(value.value, files, pointer)
    if _is_datetime(value):  # datetime, date, time, and their subclasses (pandas.Timestamp)
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return _encode(value.tolist(), files, pointer)
    raise TypeError("the output %r of type %s cannot be turned into JSON" % (value, type(value).__name__))


def _is_datetime(value: Any) -> bool:
    datetime = sys.modules.get("datetime")  # a value of its types means it is imported
    return datetime is not None and isinstance(value, (datetime.datetime, datetime.date, datetime.time))


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _describe(value: Any, pointer: str, where: str) -> str:
    """`pointer` into `value` as Python would write it: where[2]['scores'].mean."""
    label, node = where, value
    try:
        for token in pointer.split("/")[1:]:
            while not isinstance(node, (list, tuple, set, frozenset, dict)) and not (
                    dataclasses.is_dataclass(node)) and hasattr(node, "tolist"):
                node = node.tolist()
            if isinstance(node, (set, frozenset)):
                node = list(node)
            if isinstance(node, (list, tuple)):
                node = node[int(token)]
                label += "[%s]" % token
            elif isinstance(node, dict):
                key = next(k for k in node if _pointer_token(k) == token)
                node = node[key]
                label += "[%r]" % (key,)
            else:
                name = token.replace("~1", "/").replace("~0", "~")
                node = getattr(node, name)
                label += "." + name
    except Exception:  # only a label is at stake: fall back to the pointer itself
        return where + pointer
    return label
