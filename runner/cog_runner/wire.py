"""A small protobuf wire-format codec, so the runner needs no protobuf package.

It knows the four things runner.proto uses: varints (uint32/uint64/bool/enum),
strings, bytes and nested messages. A message is described by a table
``{field_number: (name, kind, nested_table_or_None)}``; values are plain dicts.
Unknown fields, including other wire types, are skipped, so a newer server can
add fields without breaking an older runner.
"""

from typing import Any, Dict, Optional, Tuple

Table = Dict[int, Tuple[str, str, Optional[dict]]]

VARINT_KINDS = ("uint", "bool", "enum")
LENGTH_KINDS = ("string", "bytes", "message")


class DecodeError(ValueError):
    pass


def _encode_varint(value: int, out: bytearray) -> None:
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


def _decode_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def encode(table: Table, values: Dict[str, Any]) -> bytes:
    out = bytearray()
    _encode_into(table, values, out)
    return bytes(out)


def _encode_into(table: Table, values: Dict[str, Any], out: bytearray) -> None:
    for number, (name, kind, nested) in sorted(table.items()):
        value = values.get(name)
        if value is None:
            continue
        if kind in VARINT_KINDS:
            value = int(value)
            if value == 0:
                continue  # proto3 leaves defaults out
            _encode_varint(number << 3, out)
            _encode_varint(value, out)
            continue
        if kind == "string":
            if value == "":
                continue
            payload = value.encode("utf-8")
        elif kind == "bytes":
            if value == b"":
                continue
            payload = bytes(value)
        elif kind == "message":
            # A set message field is sent even when empty (it marks a oneof).
            payload = encode(nested, value)
        else:
            raise ValueError("unknown kind %r" % kind)
        _encode_varint((number << 3) | 2, out)
        _encode_varint(len(payload), out)
        out += payload


def defaults(table: Table) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for name, kind, _ in table.values():
        if kind in VARINT_KINDS:
            result[name] = False if kind == "bool" else 0
        elif kind == "string":
            result[name] = ""
        elif kind == "bytes":
            result[name] = b""
        # message fields stay absent unless present on the wire
    return result


def decode(table: Table, data: bytes) -> Dict[str, Any]:
    result = defaults(table)
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        field = table.get(number)
        if wire_type == 0:
            value, pos = _decode_varint(data, pos)
            if field is not None and field[1] in VARINT_KINDS:
                result[field[0]] = bool(value) if field[1] == "bool" else value
        elif wire_type == 2:
            length, pos = _decode_varint(data, pos)
            if pos + length > end:
                raise DecodeError("truncated length-delimited field %d" % number)
            chunk = data[pos:pos + length]
            pos += length
            if field is not None:
                name, kind, nested = field
                if kind == "string":
                    result[name] = chunk.decode("utf-8")
                elif kind == "bytes":
                    result[name] = bytes(chunk)
                elif kind == "message":
                    result[name] = decode(nested, chunk)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise DecodeError("unsupported wire type %d in field %d" % (wire_type, number))
        if pos > end:
            raise DecodeError("truncated fixed-width field")
    return result
