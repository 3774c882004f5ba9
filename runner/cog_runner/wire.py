"""A small protobuf wire-format codec, so the runner needs no protobuf package.

It knows what runner.proto uses: varints (uint32, uint64, bool, enum), strings,
bytes and nested messages (kind ``view``: bytes decoded as a memoryview into the
frame rather than copied). A message is described by a table
``{field_number: (name, kind, nested_table_or_None)}``; values are plain dicts.
Unknown fields of the wire types protobuf still uses (varint, fixed64,
length-delimited, fixed32) are skipped, so a newer server can add fields
without breaking an older runner.

Decoding follows the C++ parser: the last value of a repeated scalar wins, a
repeated message field is merged, setting a member of a oneof (kind
``member``) clears the others, uint32 and enum values are cut to 32 bits.
Anything that is not a valid encoding (a bad or truncated varint, a field
longer than what is left, invalid UTF-8 in a string, field number 0, a group
or unknown wire type) raises DecodeError, and nothing else: the runner reports
such a frame and goes on (tests/runner_wire_fuzz_test.py holds it to that).
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

Table = Dict[int, Tuple[str, str, Optional[dict]]]
Buffer = Union[bytes, bytearray, memoryview]

VARINT_KINDS = ("uint32", "uint64", "bool", "enum")
MESSAGE_KINDS = ("message", "member")
# "view": bytes on the wire, decoded as a memoryview into the frame (no copy);
# for large payloads the reader turns into something else at once (a str).
LENGTH_KINDS = ("string", "bytes", "view") + MESSAGE_KINDS

# A string or bytes payload at least this large is not copied into the frame
# being encoded: encode_frame_parts() hands it on as a buffer of its own.
LARGE_PAYLOAD = 64 << 10
_TEXT_KINDS = ("string", "bytes", "view")

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_MAX_VARINT_BYTES = 10


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the message."""


def _encode_varint(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80:
        out.append(value)
        return
    if value < 0:
        value += 1 << 64  # two's complement, as protobuf encodes negative int32/int64
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _decode_varint(data: Buffer, pos: int, end: int, max_bytes: int = _MAX_VARINT_BYTES) -> Tuple[int, int]:
    result = 0
    shift = 0
    limit = min(end, pos + max_bytes)
    while pos < limit:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _MASK64, pos
        shift += 7
    if pos >= end:
        raise DecodeError("truncated varint")
    raise DecodeError("varint longer than %d bytes" % max_bytes)


def _decode_key(data: Buffer, pos: int, end: int) -> Tuple[int, int]:
    # As the C++ parser reads a tag: at most 5 bytes, taken modulo 2**32.
    key, pos = _decode_varint(data, pos, end, 5)
    return key & _MASK32, pos


def _decode_length(data: Buffer, pos: int, end: int) -> Tuple[int, int]:
    # As the C++ parser reads a size: at most 5 bytes, under 2**31.
    length, pos = _decode_varint(data, pos, end, 5)
    if length >= 1 << 31:
        raise DecodeError("length %d is out of range" % length)
    return length, pos


def encode(table: Table, values: Dict[str, Any]) -> bytes:
    out = bytearray()
    _encode_into(table, values, out)
    return bytes(out)


def encode_frame(table: Table, values: Dict[str, Any]) -> bytearray:
    """The message with its 4-byte big-endian length in front, built in one buffer."""
    out = bytearray(4)
    _encode_into(table, values, out)
    size = len(out) - 4
    if size > _MASK32:
        raise ValueError("a message of %d bytes does not fit a frame" % size)
    out[0:4] = size.to_bytes(4, "big")
    return out


# Per table of oneof members: {name: (the member's key byte, its table's flat
# layout)} for each member with a one-byte key whose table is flat (every
# member of Server/RunnerMessage).
_member_numbers: Dict[int, Dict[str, Tuple[int, list]]] = {}


def _members(table: Table) -> Dict[str, Tuple[int, list]]:
    members = _member_numbers.get(id(table))
    if members is None:
        members = {}
        for number, (name, kind, nested) in table.items():
            layout = _flat_layout(nested) if kind == "member" and number < 16 else None
            if layout is not None:
                members[name] = ((number << 3) | 2, layout)
        _member_numbers[id(table)] = members
    return members


def _flat_layout(table: Table) -> Optional[list]:
    """(name, key bytes, is a varint) per field in number order, for a table
    of scalars, strings and bytes only with one-byte keys; None otherwise."""
    layout = []
    for number, (name, kind, _) in sorted(table.items()):
        if kind in MESSAGE_KINDS or number >= 16:
            return None
        varint = kind in VARINT_KINDS
        layout.append((name, bytes([(number << 3) | (0 if varint else 2)]), varint))
    return layout


def _encode_flat(layout: list, values: Dict[str, Any], out: bytearray, large: int) -> bool:
    # _encode_into for a flat table, with less to decide per field: what every
    # frame the runner sends is (an item of a generator is one). False, with
    # `out` half written, at a str or bytes payload of `large` or more (a str
    # counted in characters, before it is encoded).
    for name, key, varint in layout:
        value = values.get(name)
        if not value:
            continue  # None, and proto3's defaults (0, False, "", b"") are left out
        if varint:
            out += key
            _encode_varint(int(value), out)
            continue
        if len(value) >= large:
            return False
        out += key
        if type(value) is str:
            value = value.encode("utf-8", "replace")  # as _encode_into: lone surrogates repaired
        size = len(value)
        if size < 0x80:
            out.append(size)
        else:
            _encode_varint(size, out)
        out += value
    return True


def encode_member_frame(table: Table, name: str, values: Dict[str, Any],
                        large: Optional[int] = None) -> Optional[bytearray]:
    """encode_frame(table, {name: values}) where `name` is a oneof member of
    `table`, as every frame is (Server/RunnerMessage): the same bytes, built in
    place without walking each of the table's members (sending a small frame
    cost about half as many instructions as with encode_frame). With `large`:
    None instead when a str or bytes field holds `large` or more (characters
    of a str), for encode_frame_parts to send from where it is."""
    member = _members(table).get(name)
    if member is None:  # not a flat member with a one-byte key: the general encoder
        if large is not None and _has_large_payload(table, {name: values}, large):
            return None
        return encode_frame(table, {name: values})
    key, layout = member
    out = bytearray(6)  # length prefix, key, and the message's length if under 128
    out[4] = key
    if not _encode_flat(layout, values, out, _MASK64 if large is None else large):
        return None
    size = len(out) - 6
    if size < 0x80:
        out[5] = size
        out[0:4] = (size + 2).to_bytes(4, "big")
        return out
    head = bytearray(5)
    head[4] = key
    _encode_varint(size, head)
    frame = head + memoryview(out)[6:]
    size = len(frame) - 4
    if size > _MASK32:
        raise ValueError("a message of %d bytes does not fit a frame" % size)
    frame[0:4] = size.to_bytes(4, "big")
    return frame


def member_encoder(table: Table, name: str, fixed: Dict[str, Any],
                   field: str) -> Callable[[bytes], bytearray]:
    """A function of `data` (non-empty bytes) returning
    encode_member_frame(table, name, dict(fixed, **{field: data})): the same
    bytes, with `fixed` encoded once instead of for every frame. For frames
    that differ in one bytes field, as a generator's items do (the same
    prediction id, a new value each)."""
    key, layout = _members(table)[name]
    prefix = bytearray()  # the fixed fields numbered before `field`
    suffix = bytearray()  # and after it
    field_key = b""
    for field_name, field_key_bytes, varint in layout:
        if field_name == field:
            if varint:
                raise ValueError("%s is no bytes field of %s" % (field, name))
            field_key = field_key_bytes
        elif field_name in fixed:
            _encode_flat([(field_name, field_key_bytes, varint)], fixed,
                         suffix if field_key else prefix, _MASK64)
    if not field_key:
        raise ValueError("%s is no bytes field of %s" % (field, name))
    fixed_size = len(prefix) + len(field_key) + len(suffix)

    # The one-byte varints are written in line, as in _encode_flat: calling
    # _encode_varint for them cost a generator of 100 ~260k instructions more.
    def encode(data: bytes) -> bytearray:
        size = len(data)
        message_size = fixed_size + (1 if size < 0x80 else _varint_size(size)) + size
        out = bytearray(4)
        out.append(key)
        if message_size < 0x80:
            out.append(message_size)
        else:
            _encode_varint(message_size, out)
        out[0:4] = (len(out) - 4 + message_size).to_bytes(4, "big")
        out += prefix
        out += field_key
        if size < 0x80:
            out.append(size)
        else:
            _encode_varint(size, out)
        out += data
        if suffix:
            out += suffix
        return out

    return encode


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def decode_member(table: Table, data: Buffer) -> Tuple[str, Dict[str, Any]]:
    """What decode(table, data) says, as (the name of the oneof member set, its
    fields), for a table of oneof members (Server/RunnerMessage); ("", {}) when
    none is set. A message that is exactly one member field, as every frame
    is, is read without the general walk; anything else takes it."""
    view = memoryview(data)
    end = len(view)
    if end >= 2 and view[0] < 0x80 and view[0] & 7 == 2:
        field = table.get(view[0] >> 3)
        if field is not None and field[1] == "member":
            length, pos = (view[1], 2) if view[1] < 0x80 else _decode_length(view, 1, end)
            if pos + length == end:
                name, _, nested = field
                fields = defaults(nested)
                _decode_into(nested, view, pos, end, fields)
                return name, fields
    message = decode(table, view)
    for name, value in message.items():
        if isinstance(value, dict):
            return name, value
    return "", {}


def encode_frame_parts(table: Table, values: Dict[str, Any]) -> Tuple[List[Buffer], int]:
    """The frame as buffers to send in order (socket.sendmsg) and its size in
    bytes, length prefix included. Like encode_frame, but a string or bytes
    payload of LARGE_PAYLOAD bytes or more is one of the buffers itself,
    not copied."""
    head = bytearray(4)
    parts: List[Buffer] = [head]
    size = _encode_parts(table, values, parts)
    if size > _MASK32:
        raise ValueError("a message of %d bytes does not fit a frame" % size)
    head[0:4] = size.to_bytes(4, "big")
    return parts, size + 4


def _encode_parts(table: Table, values: Dict[str, Any], parts: List[Buffer]) -> int:
    # Appends the message to `parts` (whose last part is the bytearray being
    # written) and returns its encoded size. The fields without a large payload
    # go first, encoded together as usual; then each large payload after its
    # key and length (protobuf takes fields in any order).
    out = parts[-1]
    before = len(out)
    small: Dict[str, Any] = {}
    large = []
    for varint_key, length_key, name, kind, nested in _layout(table):
        value = values.get(name)
        if value is None:
            continue
        if kind in MESSAGE_KINDS and _has_large_payload(nested, value, LARGE_PAYLOAD):
            large.append((length_key, nested, value))
        elif kind in _TEXT_KINDS and len(value) >= LARGE_PAYLOAD:
            large.append((length_key, None, value))
        else:
            small[name] = value
    _encode_into(table, small, out)
    size = len(out) - before
    for length_key, nested, value in large:
        if nested is not None:
            nested_parts: List[Buffer] = [bytearray()]
            payload_size = _encode_parts(nested, value, nested_parts)
        else:
            payload = value.encode("utf-8", "replace") if isinstance(value, str) else value
            nested_parts = [payload, bytearray()]
            payload_size = len(payload)
        out = parts[-1]
        before = len(out)
        _encode_varint(length_key, out)
        _encode_varint(payload_size, out)
        size += len(out) - before + payload_size
        if nested is not None:
            out += nested_parts[0]
            nested_parts = nested_parts[1:]
        parts.extend(nested_parts)
    return size


def _has_large_payload(table: Table, values: Dict[str, Any], large: int) -> bool:
    for _, (name, kind, nested) in table.items():
        value = values.get(name)
        if value is None:
            continue
        if kind in MESSAGE_KINDS:
            if _has_large_payload(nested, value, large):
                return True
        elif kind in _TEXT_KINDS and len(value) >= large:
            return True
    return False


# Each table's fields in number order, with their keys: worked out once per table.
_layouts: Dict[int, list] = {}


def _layout(table: Table) -> list:
    layout = _layouts.get(id(table))
    if layout is None:
        layout = [(number << 3, (number << 3) | 2, name, kind, nested)
                  for number, (name, kind, nested) in sorted(table.items())]
        _layouts[id(table)] = layout
    return layout


def _encode_into(table: Table, values: Dict[str, Any], out: bytearray) -> None:
    # The hot path of every frame the runner sends: small varints (every key
    # of these tables, most lengths) are appended inline.
    for varint_key, length_key, name, kind, nested in _layout(table):
        value = values.get(name)
        if value is None:
            continue
        if kind in VARINT_KINDS:
            value = int(value)
            if value == 0:
                continue  # proto3 leaves defaults out
            _encode_varint(varint_key, out)
            _encode_varint(value, out)
            continue
        if kind == "string":
            if not value:
                continue
            # bytes are taken as already UTF-8; a str that cannot be UTF-8 (lone
            # surrogates, e.g. from a file name) is repaired rather than refused.
            payload = value if isinstance(value, (bytes, bytearray)) else value.encode("utf-8", "replace")
        elif kind == "bytes" or kind == "view":
            if not value:
                continue
            payload = value
        elif kind in MESSAGE_KINDS:
            # A set message field is sent even when empty (it marks a oneof).
            payload = bytearray()
            _encode_into(nested, value, payload)
        else:
            raise ValueError("unknown kind %r" % kind)
        size = len(payload)
        if length_key < 0x80 and size < 0x80:
            out.append(length_key)
            out.append(size)
        else:
            _encode_varint(length_key, out)
            _encode_varint(size, out)
        out += payload


def defaults(table: Table) -> Dict[str, Any]:
    result = _defaults.get(id(table))
    if result is None:
        result = {}
        for name, kind, _ in table.values():
            if kind in VARINT_KINDS:
                result[name] = False if kind == "bool" else 0
            elif kind == "string":
                result[name] = ""
            elif kind == "bytes" or kind == "view":
                result[name] = b""
            # message fields stay absent unless present on the wire
        _defaults[id(table)] = result
    return dict(result)


_defaults: Dict[int, Dict[str, Any]] = {}


def decode(table: Table, data: Buffer) -> Dict[str, Any]:
    result = defaults(table)
    view = memoryview(data)  # nested messages are read in place, not copied
    _decode_into(table, view, 0, len(view), result)
    return result


def _varint_value(kind: str, value: int) -> Any:
    if kind == "bool":
        return value != 0
    if kind == "uint64":
        return value
    value &= _MASK32
    if kind == "enum" and value >= 1 << 31:
        value -= 1 << 32  # enums are int32
    return value


def _decode_into(table: Table, data: memoryview, pos: int, end: int, result: Dict[str, Any]) -> None:
    while pos < end:
        key = data[pos]  # one-byte keys and lengths, the usual case, skip the call
        if key < 0x80:
            pos += 1
        else:
            key, pos = _decode_key(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        field = table.get(number)
        if wire_type == 2:
            if pos < end and data[pos] < 0x80:
                length = data[pos]
                pos += 1
            else:
                length, pos = _decode_length(data, pos, end)
            if length > end - pos:
                raise DecodeError("field %d claims %d bytes, %d are left" % (number, length, end - pos))
            start, pos = pos, pos + length
            if field is None:
                continue
            name, kind, nested = field
            if kind == "string":
                try:
                    result[name] = str(data[start:pos], "utf-8")
                except UnicodeDecodeError as e:
                    raise DecodeError("field %d (%s) is not valid UTF-8: %s" % (number, name, e.reason)) from None
            elif kind == "bytes":
                result[name] = data[start:pos].tobytes()
            elif kind == "view":
                result[name] = data[start:pos]
            elif kind in MESSAGE_KINDS:
                current = result.get(name)
                if current is None:
                    if kind == "member":
                        _clear_members(table, result)
                    current = defaults(nested)
                _decode_into(nested, data, start, pos, current)  # a repeated message merges
                result[name] = current
        elif wire_type == 0:
            value, pos = _decode_varint(data, pos, end)
            if field is not None and field[1] in VARINT_KINDS:
                result[field[0]] = _varint_value(field[1], value)
        elif wire_type == 1 or wire_type == 5:
            width = 8 if wire_type == 1 else 4
            if width > end - pos:
                raise DecodeError("truncated fixed-width field %d" % number)
            pos += width
        else:
            raise DecodeError("wire type %d in field %d (groups and types 6, 7 are not used)" % (wire_type, number))


def _clear_members(table: Table, result: Dict[str, Any]) -> None:
    for name, kind, _ in table.values():
        if kind == "member":
            result.pop(name, None)


def salvage(data: Buffer, path: Sequence[int]) -> Optional[bytes]:
    """Best effort, for a frame that does not decode: the raw bytes of the first
    length-delimited field at `path` (field numbers, outermost first), read up
    to where the frame breaks. None when the frame breaks before it."""
    view = memoryview(data)
    pos, end = 0, len(view)
    for depth, wanted in enumerate(path):
        found = None
        while pos < end and found is None:
            try:
                key, pos = _decode_key(view, pos, end)
                number, wire_type = key >> 3, key & 7
                if wire_type == 0:
                    _, pos = _decode_varint(view, pos, end)
                elif wire_type == 2:
                    length, pos = _decode_length(view, pos, end)
                    start, pos = pos, min(end, pos + length)
                    if number == wanted:
                        # A truncated message is searched as far as it goes; a
                        # truncated leaf is not the value that was sent.
                        if depth == len(path) - 1 and start + length > end:
                            return None
                        found = (start, pos)
                elif wire_type in (1, 5):
                    pos += 8 if wire_type == 1 else 4
                else:
                    return None
            except DecodeError:
                return None
        if found is None:
            return None
        pos, end = found
        if depth == len(path) - 1:
            return bytes(view[pos:end])
    return None
