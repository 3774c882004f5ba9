"""The runner's own protobuf codec agrees with the C++ generated code, both ways.

codec_conformance_tool holds the same canonical messages, built with the C++
generated classes; a frame either side cannot read, or reads differently, fails.
"""

import os
import struct
import subprocess
import unittest

from cog_runner import messages, wire

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec_conformance_tool")

SERVER = [
    {"setup": {"weights": "/src/weights"}},
    {"predict": {"id": "p-1", "kind": messages.KIND_TRAIN,
                 "input_json": '{"s": "hé"}'.encode(), "context_json": b'{"a": "b"}'}},
    {"predict": {"id": "p-2", "input_json": b'{"prompt": null}', "input_text_name": "prompt",
                 "input_text": "long ✓ text\n".encode(), "batch_outputs": True,
                 "batch_text_items": True}},
    {"cancel": {"id": "p-1"}},
    {"healthcheck": {"sequence": 18446744073709551615}},
    {"shutdown": {}},
    {"setup": {}},
    {"setup": {"weights": "w", "max_frame_bytes": 4294967296}},
]

RUNNER = [
    {"hello": {"protocol_version": messages.PROTOCOL_VERSION, "runner_version": "0.1.0",
               "python_version": "3.11.7", "pid": 4242, "openapi_json": b'{"openapi": "3.0.2"}',
               "load_error": "ImportError: no torch", "predict_is_async": True, "has_train": True,
               "has_healthcheck": True, "max_concurrency": 8, "cog_version": "0.1.0"}},
    {"setup_done": {"succeeded": True, "error": "RuntimeError: boom"}},
    {"log": {"id": "p-1", "source": messages.LOG_STDERR, "text": "line ✓\n"}},
    {"output": {"id": "p-1", "value_json": b'\x00\xff"bytes"', "files_json": b'[""]'}},
    {"metric": {"id": "p-1", "name": "tokens", "value_json": b"12", "mode": messages.METRIC_APPEND}},
    {"done": {"id": "p-1", "status": messages.DONE_CANCELED, "error": "canceled",
              "output_json": b"[1, 2]", "files_json": b'["/1"]'}},
    {"output": {"id": "p-1", "value_text": "text ✓".encode()}},
    {"done": {"id": "p-3", "status": messages.DONE_SUCCEEDED, "output_text": b"plain\n"}},
    {"healthcheck_result": {"sequence": 300, "healthy": True, "error": "disk full"}},
    {"done": {"id": "p-2", "status": messages.DONE_SUCCEEDED}},
    {"bad_frame": {"error": "field 1 (id) is not valid UTF-8", "id": b"\xffp"}},
    {"output": {"id": "p-4", "value_json": '["a","✓"]'.encode(), "value_items": True}},
]


def split_frames(data):
    frames = []
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        frames.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return frames


def with_defaults(table, message):
    """A decoded message: every scalar field present, unset ones at their default."""
    (name, fields), = message.items()
    nested = table_for(table, name)
    return {name: dict(wire.defaults(nested), **fields)}


def table_for(table, name):
    for field_name, kind, nested in table.values():
        if field_name == name:
            return nested
    raise KeyError(name)


class CodecConformanceTest(unittest.TestCase):
    def test_python_decodes_what_cpp_encodes(self):
        data = subprocess.run([TOOL, "encode"], check=True, stdout=subprocess.PIPE).stdout
        frames = split_frames(data)
        self.assertEqual(len(frames), len(SERVER) + len(RUNNER))
        for frame, expected in zip(frames, SERVER):
            decoded = wire.decode(messages.SERVER_MESSAGE, frame)
            self.assertEqual(decoded, with_defaults(messages.SERVER_MESSAGE, expected))
        for frame, expected in zip(frames[len(SERVER):], RUNNER):
            decoded = wire.decode(messages.RUNNER_MESSAGE, frame)
            self.assertEqual(decoded, with_defaults(messages.RUNNER_MESSAGE, expected))

    def test_cpp_decodes_what_python_encodes(self):
        data = b""
        for message in SERVER:
            payload = wire.encode(messages.SERVER_MESSAGE, message)
            data += struct.pack(">I", len(payload)) + payload
        for message in RUNNER:
            payload = wire.encode(messages.RUNNER_MESSAGE, message)
            data += struct.pack(">I", len(payload)) + payload
        result = subprocess.run([TOOL, "decode"], input=data, stderr=subprocess.PIPE)
        self.assertEqual(result.returncode, 0, result.stderr.decode())

    def test_python_encoding_is_byte_identical_to_cpp(self):
        # Both sides write fields in number order and leave defaults out, so the
        # bytes themselves match, not just their meaning.
        cpp = subprocess.run([TOOL, "encode"], check=True, stdout=subprocess.PIPE).stdout
        python = b""
        for table, batch in ((messages.SERVER_MESSAGE, SERVER), (messages.RUNNER_MESSAGE, RUNNER)):
            for message in batch:
                payload = wire.encode(table, message)
                python += struct.pack(">I", len(payload)) + payload
        self.assertEqual(split_frames(python), split_frames(cpp))
        # And the runner's own way of writing a frame (Connection.send), short
        # messages and those of 128 bytes or more (a two-byte length) alike.
        for table, batch in ((messages.SERVER_MESSAGE, SERVER), (messages.RUNNER_MESSAGE, RUNNER)):
            for message in batch:
                (name, fields), = message.items()
                frame = bytes(wire.encode_member_frame(table, name, fields))
                self.assertEqual(frame, struct.pack(">I", len(frame) - 4) + wire.encode(table, message))
        for size in (0, 1, 121, 122, 123, 127, 128, 200, 16383, 16384, 70000):
            for fields in ({"id": "p", "value_text": b"v" * size}, {"id": "p" * size, "source": 1, "text": "✓"}):
                name = "output" if "value_text" in fields else "log"
                self.assertEqual(bytes(wire.encode_member_frame(messages.RUNNER_MESSAGE, name, fields)),
                                 bytes(wire.encode_frame(messages.RUNNER_MESSAGE, {name: fields})), (name, size))
                # Connection.send asks for None at a payload of LARGE_PAYLOAD or more
                # (then sent from where it is, by encode_frame_parts).
                frame = wire.encode_member_frame(messages.RUNNER_MESSAGE, name, fields, wire.LARGE_PAYLOAD)
                if size >= wire.LARGE_PAYLOAD:
                    self.assertIsNone(frame, (name, size))
                else:
                    self.assertEqual(bytes(frame), bytes(wire.encode_frame(messages.RUNNER_MESSAGE, {name: fields})))

    def test_a_generators_item_encoder_writes_what_the_general_encoder_writes(self):
        # wire.member_encoder (a str item's Output frame, its id encoded once):
        # byte for byte the general encoding, at every length boundary of the
        # item, of the id and of the whole message (one-, two- and three-byte
        # lengths).
        for id_size in (1, 20, 100, 127, 128, 300):
            prediction_id = "p" * id_size
            encode = wire.member_encoder(messages.RUNNER_MESSAGE, "output", {"id": prediction_id},
                                         "value_text")
            for size in (1, 2, 100, 104, 105, 106, 121, 125, 126, 127, 128, 129, 200, 16250,
                         16383, 16384, 16385, 70000):
                fields = {"id": prediction_id, "value_text": "é✓".encode() * (size // 5) + b"v" * (size % 5)}
                self.assertEqual(bytes(encode(fields["value_text"])),
                                 bytes(wire.encode_frame(messages.RUNNER_MESSAGE, {"output": fields})),
                                 (id_size, size))
        # Fixed fields numbered after the varying one (a batch of held items:
        # value_json, then value_items) go after it.
        for id_size in (1, 127, 128):
            prediction_id = "b" * id_size
            encode = wire.member_encoder(messages.RUNNER_MESSAGE, "output",
                                         {"id": prediction_id, "value_items": True}, "value_json")
            for size in (1, 121, 122, 123, 127, 128, 16383, 16384, 70000):
                fields = {"id": prediction_id, "value_json": b"[" * size, "value_items": True}
                self.assertEqual(bytes(encode(fields["value_json"])),
                                 bytes(wire.encode_frame(messages.RUNNER_MESSAGE, {"output": fields})),
                                 (id_size, size))
        with self.assertRaises(ValueError):  # not a bytes field of the message
            wire.member_encoder(messages.RUNNER_MESSAGE, "output", {"id": "p"}, "value_items")

    def test_large_payloads_sent_as_parts_read_the_same_in_cpp(self):
        # A large output or log leaves the runner as buffers of its own (not
        # copied into the frame), after the message's other fields: C++ must
        # read exactly what the one-buffer encoding says.
        big = [
            {"done": {"id": "p-1", "status": messages.DONE_SUCCEEDED,
                      "output_text": ("✓ text\n" * 20000).encode()}},
            {"log": {"id": "p-1", "source": messages.LOG_STDOUT, "text": "x" * wire.LARGE_PAYLOAD}},
            {"output": {"id": "p-2", "value_text": b"y" * (1 << 20), "files_json": b'["/0"]'}},
            {"done": {"id": "p-3", "status": messages.DONE_SUCCEEDED, "output_text": b"short"}},
        ]
        data = b""
        for message in big:
            parts, size = wire.encode_frame_parts(messages.RUNNER_MESSAGE, message)
            frame = b"".join(bytes(part) for part in parts)
            self.assertEqual(len(frame), size)
            self.assertEqual(wire.decode(messages.RUNNER_MESSAGE, frame[4:]),
                             with_defaults(messages.RUNNER_MESSAGE, message))
            data += frame
        result = subprocess.run([TOOL, "canon", "runner"], input=data, check=True,
                                stdout=subprocess.PIPE).stdout
        answers = split_frames(result)
        self.assertEqual(len(answers), len(big))
        for answer, message in zip(answers, big):
            self.assertEqual(answer, b"\1" + wire.encode(messages.RUNNER_MESSAGE, message))

    def test_unknown_fields_are_skipped(self):
        # A newer server may add fields of any wire type; the runner ignores them.
        extra = bytes([0x0A, 0x02]) + b"id"  # field 1 (id) = "id"
        extra += bytes([0x48, 0x07])  # field 9, varint 7
        extra += bytes([0x55]) + b"\x00\x00\x80\x3f"  # field 10, fixed32
        extra += bytes([0x59]) + b"\x00" * 8  # field 11, fixed64
        payload = bytes([0x1A, len(extra)]) + extra  # ServerMessage.cancel
        self.assertEqual(wire.decode(messages.SERVER_MESSAGE, payload), {"cancel": {"id": "id"}})

    def test_truncated_input_is_a_decode_error(self):
        payload = wire.encode(messages.SERVER_MESSAGE, {"cancel": {"id": "abcdef"}})
        with self.assertRaises(wire.DecodeError):
            wire.decode(messages.SERVER_MESSAGE, payload[:-2])


if __name__ == "__main__":
    unittest.main()
