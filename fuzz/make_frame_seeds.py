"""Writes the seed corpus of frame_fuzzer: streams of runner frames as the
runner's own codec encodes them (one conversation per file), plus a few
broken ones. Run from the repository root:

  PYTHONPATH=runner python3 fuzz/make_frame_seeds.py fuzz/corpus/frame
"""

import json
import os
import sys

from cog_runner import messages, wire

OPENAPI = {
    "openapi": "3.0.2",
    "components": {"schemas": {"Input": {
        "type": "object", "required": ["text"],
        "properties": {
            "text": {"type": "string", "title": "Text", "x-order": 0},
            "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3, "x-order": 1},
            "image": {"type": "string", "format": "uri", "x-order": 2},
        }}}},
}


def frame(member, **fields):
    return bytes(wire.encode_frame(messages.RUNNER_MESSAGE, {member: fields}))


STREAMS = {
    "hello_setup": [
        frame("hello", protocol_version=1, runner_version="0.1", python_version="3.11.2",
              pid=42, openapi_json=json.dumps(OPENAPI).encode(), max_concurrency=1,
              cog_version="0.1"),
        frame("log", id="", source=0, text="loading weights\n"),
        frame("setup_done", succeeded=True),
    ],
    "hello_load_error": [frame("hello", protocol_version=1, load_error="SyntaxError: bad")],
    "prediction": [
        frame("log", id="p1", source=1, text="step 1\nstep 2\n"),
        frame("output", id="p1", value_json=b'{"a":[1,2.5,"x",null,true]}'),
        frame("output", id="p1", value_json=b'"file:///tmp/out%20put.png"', files_json=b'[""]'),
        frame("metric", id="p1", name="tokens", value_json=b"12", mode=1),
        frame("done", id="p1", status=1, output_json=b'["file:///tmp/a.txt",{"b":"file:///b"}]',
              files_json=b'["/0","/1/b"]'),
    ],
    "failed": [frame("done", id="p2", status=2, error="ValueError: no")],
    "healthcheck": [frame("healthcheck_result", sequence=7, healthy=False, error="sick")],
    "bad_frame": [frame("bad_frame", error="truncated varint", id=b"\xff\xfe")],
    "unicode": [frame("output", id="p\u00e9", value_json='"\u2603 \\ud83d\\ude00"'.encode())],
}

RAW = {
    "truncated_header": b"\x00\x00",
    "truncated_body": b"\x00\x00\x00\x10\x1a\x02",
    "huge_length": b"\x0f\xff\xff\xff\x1a",
    "over_limit": b"\xff\xff\xff\xff",
    "empty_frame": b"\x00\x00\x00\x00",
    "bad_varint": b"\x00\x00\x00\x0b" + b"\x08" + b"\xff" * 10,
    "deep_json": frame("output", id="p", value_json=b"[" * 300 + b"]" * 300),
    "big_numbers": frame("output", id="p", value_json=b"[1e400,-1e400,18446744073709551616,-0.0]"),
}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, frames in STREAMS.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(b"".join(frames))
    for name, data in RAW.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
