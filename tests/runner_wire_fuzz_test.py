"""Fuzzes the runner's own protobuf codec (runner/cog_runner/wire.py) with random
and mutated frames, standard library only.

What must hold for any bytes at all: decoding raises nothing but
wire.DecodeError, ends promptly, and what it accepts round-trips (encoding the
decoded message and decoding that gives it back). Against the C++ generated
code (codec_conformance_tool canon): a frame is accepted by both or by neither,
and where both accept it they read the same message. Seeds are the canonical
frames the C++ tool encodes plus frames the runner really sends. The seed of
`random` is fixed, so a failure reproduces; each failure prints the frame.
"""

import json
import os
from unittest import mock
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from cog_runner import connection as connection_module
from cog_runner import messages, wire
from cog_runner.connection import MIN_SEND_LIMIT, TEXT_ITEM_CHARS, Connection

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec_conformance_tool")
SEED = 20261128
MUTATIONS_PER_SEED = 1500
RANDOM_FRAMES = 10000
WATCHDOG_SECONDS = 120

TABLES = {"server": messages.SERVER_MESSAGE, "runner": messages.RUNNER_MESSAGE}


def split_frames(data):
    frames, pos = [], 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        frames.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return frames


def join_frames(frames):
    return b"".join(struct.pack(">I", len(f)) + f for f in frames)


def seed_frames():
    cpp = split_frames(subprocess.run([TOOL, "encode"], check=True, stdout=subprocess.PIPE).stdout)
    ours = [wire.encode(messages.RUNNER_MESSAGE, m) for m in (
        {"log": {"id": "p-7", "source": messages.LOG_STDOUT, "text": "step 3/10 ✓\n"}},
        {"output": {"id": "p-7", "value_json": b'{"a": [1, 2.5, "\\u00e9"]}', "files_json": b'["/a"]'}},
        {"done": {"id": "p-7", "status": messages.DONE_FAILED, "error": "output[2] is nan"}},
        {"bad_frame": {"error": "truncated varint", "id": b"\xff\xfe"}},
    )] + [wire.encode(messages.SERVER_MESSAGE, m) for m in (
        {"predict": {"id": "p-7", "input_json": b'{"s": "' + b"x" * 300 + b'"}', "context_json": b"{}"}},
        {"setup": {"weights": "w", "max_frame_bytes": 1 << 33}},
    )]
    return cpp + ours


def mutate(rng, frame, others):
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        pos = rng.randrange(len(data) + 1)
        if choice == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:  # replace a byte with a telling value
            data[rng.randrange(len(data))] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xED, rng.randrange(256)))
        elif choice == 2:  # insert random bytes
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and data:  # delete a range
            del data[pos:pos + rng.randint(1, 16)]
        elif choice == 4:  # truncate
            del data[pos:]
        elif choice == 5 and data:  # duplicate a range (repeated fields, merged messages)
            start = rng.randrange(len(data))
            data[pos:pos] = data[start:start + rng.randint(1, 32)]
        elif choice == 6:  # splice in part of another frame
            other = rng.choice(others)
            start = rng.randrange(len(other) + 1)
            data[pos:pos] = other[start:start + rng.randint(1, 64)]
        elif choice == 7:  # an overlong or runaway varint
            data[pos:pos] = b"\xff" * rng.randint(1, 12) + bytes([rng.randrange(128)])
        elif choice == 8:  # a field of a wire type protobuf does not use here
            data[pos:pos] = bytes([(rng.randint(1, 15) << 3) | rng.choice((3, 4, 6, 7))])
    return bytes(data)


def random_frame(rng):
    size = rng.choice((0, 1, 2, 3, 5, 8, 16, 64, 256))
    return bytes(rng.randrange(256) for _ in range(size))


class Watchdog:
    """Fails the test, naming the frame at hand, if decoding stops making progress."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.current = b""

    def __enter__(self):
        def expired(signum, frame):
            raise AssertionError("decoding hung on %s" % self.current.hex())
        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def decode_or_error(table, frame):
    """The decoded message, or the DecodeError; anything else fails the test."""
    try:
        return wire.decode(table, frame)
    except wire.DecodeError as e:
        return e


class RunnerWireFuzzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = random.Random(SEED)
        seeds = seed_frames()
        cls.frames = list(seeds)
        for frame in seeds:
            cls.frames += [mutate(rng, frame, seeds) for _ in range(MUTATIONS_PER_SEED)]
        cls.frames += [random_frame(rng) for _ in range(RANDOM_FRAMES)]

    def test_decoding_raises_only_decode_error_and_round_trips(self):
        accepted = rejected = 0
        started = time.monotonic()
        with Watchdog(WATCHDOG_SECONDS) as watchdog:
            for frame in self.frames:
                watchdog.current = frame
                for side, table in TABLES.items():
                    try:
                        decoded = decode_or_error(table, frame)
                    except Exception as e:  # noqa: BLE001 - the point of the test
                        self.fail("%s decode of %s raised %r" % (side, frame.hex(), e))
                    if isinstance(decoded, wire.DecodeError):
                        rejected += 1
                        with self.assertRaises(wire.DecodeError, msg="decode_member of %s" % frame.hex()):
                            wire.decode_member(table, frame)
                        continue
                    accepted += 1
                    again = wire.decode(table, wire.encode(table, decoded))
                    self.assertEqual(again, decoded, "%s frame %s does not round-trip" % (side, frame.hex()))
                    name = messages.which(decoded)
                    # The runner's fast paths read and write what the general ones do.
                    self.assertEqual(wire.decode_member(table, frame), (name, decoded.get(name, {})),
                                     "%s frame %s" % (side, frame.hex()))
                    if name:
                        self.assertEqual(bytes(wire.encode_member_frame(table, name, decoded[name])),
                                         bytes(wire.encode_frame(table, {name: decoded[name]})),
                                         "%s frame %s" % (side, frame.hex()))
                    wire.salvage(frame, (2, 1))
        print("\n%d frames, both tables: %d accepted, %d rejected, %.2f s"
              % (len(self.frames), accepted, rejected, time.monotonic() - started))
        self.assertGreater(accepted, len(self.frames) // 10)  # the mutations reach past the first byte
        self.assertGreater(rejected, len(self.frames) // 10)

    def test_python_and_cpp_agree_on_every_frame(self):
        for side, table in TABLES.items():
            answers = split_frames(subprocess.run(
                [TOOL, "canon", side], input=join_frames(self.frames), check=True,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout)  # protobuf logs each bad string
            self.assertEqual(len(answers), len(self.frames))
            groups = 0
            for frame, answer in zip(self.frames, answers):
                ours = decode_or_error(table, frame)
                if answer[:1] == b"\0":
                    self.assertIsInstance(ours, wire.DecodeError,
                                          "C++ refuses the %s frame %s, the runner reads %r" % (side, frame.hex(), ours))
                    continue
                if isinstance(ours, wire.DecodeError):
                    # Groups (wire types 3 and 4) are deprecated; C++ still skips
                    # them as unknown fields, the runner refuses them.
                    self.assertRegex(str(ours), "^wire type [34] ", "C++ reads the %s frame %s, the runner: %s"
                                     % (side, frame.hex(), ours))
                    groups += 1
                    continue
                self.assertEqual(ours, wire.decode(table, answer[1:]),
                                 "the %s frame %s reads differently in C++" % (side, frame.hex()))
            print("\n%s: %d frames, %d with groups that only C++ reads" % (side, len(self.frames), groups))

    def test_connection_reports_bad_frames_and_reads_on(self):
        rng = random.Random(SEED + 1)
        good = wire.encode(messages.SERVER_MESSAGE, {"cancel": {"id": "after"}})
        stream = b""
        expected = 0
        for frame in self.frames[:2000]:
            stream += struct.pack(">I", len(frame)) + frame
            if isinstance(decode_or_error(messages.SERVER_MESSAGE, frame), wire.DecodeError):
                expected += 1
        # A frame over the limit, skipped without being held, the id of its Predict recovered.
        big_predict = wire.encode(messages.SERVER_MESSAGE, {"predict": {"id": "big", "input_json": b"x" * 5000}})
        stream += struct.pack(">I", len(big_predict)) + big_predict
        stream += struct.pack(">I", len(good)) + good
        server, runner = socket.socketpair()
        connection = Connection(runner)
        connection.max_receive_bytes = 4096
        frames = []

        def send():
            pos = 0
            while pos < len(stream):  # in chunks of random sizes, as a socket delivers them
                chunk = stream[pos:pos + rng.randint(1, 70000)]
                server.sendall(chunk)
                pos += len(chunk)
            server.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        try:
            with Watchdog(WATCHDOG_SECONDS):
                while True:
                    received = connection.receive()
                    if received is None:
                        break
                    frames.append(received)
        finally:
            sender.join()
            server.close()
            connection.close()
        bad = [fields for name, fields in frames if name == "bad_frame"]
        self.assertEqual(len(bad), expected + 1)
        self.assertEqual(bad[-1]["id"], b"big")
        self.assertIn("over the runner's limit of 4096", bad[-1]["error"])
        self.assertEqual(frames[-1], ("cancel", {"id": "after"}))


class UnannouncedBytesTest(unittest.TestCase):
    """The kernel raises no SIGIO for bytes that come while the runner waits in
    recv. A read of a large frame stops at its end: what came behind it while
    the runner waited must still be seen before predict() runs
    (Connection.has_frames), or a Cancel right behind a large Predict waits for
    the next frame to arrive."""

    def setUp(self):
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        self.conn = Connection(self.ours)

    @staticmethod
    def frame(name, fields):
        return bytes(wire.encode_member_frame(messages.SERVER_MESSAGE, name, fields))

    def test_a_cancel_right_behind_a_large_predict_is_seen(self):
        predict = self.frame("predict", {"id": "p", "input_json": b'{"s":"%s"}' % (b"x" * (1 << 20))})
        sender = threading.Thread(target=self.theirs.sendall, args=(predict + self.frame("cancel", {"id": "p"}),))
        sender.start()
        name, fields = self.conn.receive()
        sender.join()
        self.assertEqual((name, fields["id"], len(fields["input_json"])), ("predict", "p", (1 << 20) + 8))
        self.assertTrue(self.conn.has_frames(), "nothing would read the Cancel behind the Predict")
        self.assertEqual([(name, fields["id"]) for name, fields in self.conn.receive_nowait()], [("cancel", "p")])
        self.assertFalse(self.conn.has_frames())

    def test_small_frames_read_whole_leave_nothing_unannounced(self):
        self.theirs.sendall(self.frame("predict", {"id": "p", "input_json": b"{}"}))
        self.assertEqual(self.conn.receive()[0], "predict")
        self.assertFalse(self.conn.has_frames())


class HeldFramesTest(unittest.TestCase):
    """Connection.send(hold=True) (Predict.batch_outputs): held frames go out
    together, in order, with the next frame sent without hold, large or not."""

    def read_frames(self, sock, count):
        """The next `count` frames on `sock`, as (name, fields)."""
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = sock.recv(n - len(data))
                self.assertTrue(chunk, "the connection closed")
                data += chunk
            return data
        frames = []
        for _ in range(count):
            (size,) = struct.unpack(">I", exactly(4))
            message = wire.decode(messages.RUNNER_MESSAGE, exactly(size))
            name = messages.which(message)
            frames.append((name, message[name]))
        return frames

    def test_held_frames_wait_for_the_next_frame(self):
        for last in ({"id": "p", "source": messages.LOG_STDOUT, "text": "line\n"},
                     {"id": "p", "source": messages.LOG_STDOUT, "text": "x" * wire.LARGE_PAYLOAD}):
            server, runner = socket.socketpair()
            self.addCleanup(server.close)
            connection = Connection(runner)
            self.addCleanup(connection.close)
            for i in range(3):
                connection.send("output", {"id": "p", "value_text": b"item%d" % i}, hold=True)
            server.setblocking(False)
            with self.assertRaises(BlockingIOError, msg="held frames were sent"):
                server.recv(1)
            server.setblocking(True)
            connection.send("log", last)
            frames = self.read_frames(server, 4)
            self.assertEqual([name for name, _ in frames], ["output"] * 3 + ["log"])
            self.assertEqual([fields["value_text"] for _, fields in frames[:3]], [b"item0", b"item1", b"item2"])
            self.assertEqual(frames[3][1]["text"], last["text"])

    def test_a_full_batch_goes_at_once(self):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        for i in range(8):  # _HOLD_FRAMES
            connection.send("output", {"id": "p", "value_text": b"item%d" % i}, hold=True)
        frames = self.read_frames(server, 8)
        self.assertEqual([fields["value_text"] for _, fields in frames], [b"item%d" % i for i in range(8)])


class HeldTextItemsTest(unittest.TestCase):
    """Connection.hold_text_item (Predict.batch_text_items): short str items
    held go out as Output frames of several items each (value_items), in
    order, ahead of any frame sent after them, each frame within the limit."""

    read_frames = HeldFramesTest.read_frames

    def setUp(self):
        # Items are held for 50 ms at most: a slow machine must not send them
        # early in the middle of a test.
        patcher = mock.patch.object(connection_module, "_HOLD_SECONDS", 60)
        patcher.start()
        self.addCleanup(patcher.stop)

    def all_frames(self, connection, server, runner):
        """Every frame `connection` sent, once it is closed for sending."""
        runner.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = server.recv(65536)
            if not chunk:
                break
            data += chunk
        frames, pos = [], 0
        while pos < len(data):
            (size,) = struct.unpack(">I", data[pos:pos + 4])
            self.assertLessEqual(size, connection.max_send_bytes)
            message = wire.decode(messages.RUNNER_MESSAGE, data[pos + 4:pos + 4 + size])
            name = messages.which(message)
            frames.append((name, message[name]))
            pos += 4 + size
        return frames

    def items_of(self, frames):
        items = []
        for name, fields in frames:
            self.assertEqual(name, "output")
            if fields.get("value_items"):
                items.extend(json.loads(fields["value_json"]))
            else:
                items.append(fields["value_text"].decode())
        return items

    def test_items_wait_for_the_next_frame_and_go_first_in_one_frame(self):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        texts = ['"q"', "back\\", "new\nline", "\x01", "é ✓ 😀", "lone \ud800", "t"]
        for text in texts:
            connection.hold_text_item("p", text)
        server.setblocking(False)
        with self.assertRaises(BlockingIOError, msg="held items were sent"):
            server.recv(1)
        server.setblocking(True)
        connection.send("done", {"id": "p", "status": messages.DONE_SUCCEEDED})
        (name, fields), done = self.read_frames(server, 2)
        self.assertEqual((name, fields["id"], fields["value_items"]), ("output", "p", True))
        self.assertEqual(json.loads(fields["value_json"]), texts)
        self.assertEqual(done[0], "done")

    def test_items_held_with_frames_keep_their_order(self):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        connection.hold_text_item("p", "a")
        connection.send("output", {"id": "p", "value_json": b"1"}, hold=True)
        connection.hold_text_item("p", "b")
        connection.hold_text_item("q", "c")  # another prediction's: a frame of its own
        connection.send("log", {"id": "p", "source": messages.LOG_STDOUT, "text": "x\n"})
        frames = self.read_frames(server, 5)
        self.assertEqual([name for name, _ in frames], ["output"] * 4 + ["log"])
        self.assertEqual([fields["id"] for _, fields in frames[:4]], ["p", "p", "p", "q"])
        self.assertEqual([json.loads(fields["value_json"]) for _, fields in frames[:4]],
                         [["a"], 1, ["b"], ["c"]])

    def test_at_the_smallest_limit_every_frame_fits_and_no_item_is_lost(self):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        connection.set_send_limit(MIN_SEND_LIMIT)
        # The worst JSON a character can take (a control character, 6 bytes;
        # an astral one once a lone surrogate makes it all \u escapes, 12), at
        # the longest held length and at the length whose bound just fits.
        near = "😀" * 169 + "\ud800"  # held: its bound is just under the items' limit
        longest = "😀" * (TEXT_ITEM_CHARS - 1) + "\ud800"
        texts = [near, longest, near, near, "\x01" * TEXT_ITEM_CHARS, "short"] * 2
        for text in texts:
            connection.hold_text_item("p", text)
        connection.send("done", {"id": "p", "status": messages.DONE_SUCCEEDED})
        frames = self.all_frames(connection, server, runner)
        self.assertEqual(frames[-1][0], "done")
        self.assertEqual(self.items_of(frames[:-1]), texts)

    def test_many_one_character_items_with_a_lone_surrogate_stay_within_the_limit(self):
        # Escaped all as \u (the surrogate makes it so), one emoji item takes
        # 12 bytes and its quotes and comma 3 more: the bound counts them all.
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        texts = ["\ud800"] + ["😀"] * 4369 + ["é"] * 5000
        for text in texts:
            connection.hold_text_item("p", text)
        connection.send("log", {"id": "p", "source": messages.LOG_STDOUT, "text": "still sending\n"})
        connection.send("done", {"id": "p", "status": messages.DONE_SUCCEEDED})
        frames = self.all_frames(connection, server, runner)
        self.assertEqual([name for name, _ in frames[-2:]], ["log", "done"])
        self.assertEqual(self.items_of(frames[:-2]), texts)

    def test_items_held_a_run_at_a_time_make_the_frames_held_one_by_one(self):
        # Connection.hold_text_items (a sync generator's items, taken from it
        # several at a time) must send byte for byte what hold_text_item()
        # sends for each item in turn: runs shorter and longer than
        # HOLD_ITEMS, items whose bytes reach the frame limit mid-run, lone
        # surrogates, another prediction's items, frames sent in between.
        rng = random.Random(SEED)
        pool = ["t", "token ", "é ✓ 😀", '"q"', "back\\", "\x01" * 40, "x" * TEXT_ITEM_CHARS,
                "😀" * (TEXT_ITEM_CHARS - 1) + "\ud800", "lone \ud800"]
        for limit in (None, MIN_SEND_LIMIT):
            steps = []
            for _ in range(400):
                if rng.random() < 0.05:
                    steps.append(("log", None))
                else:
                    run = [rng.choice(pool[:3] if rng.random() < 0.7 else pool)
                           for _ in range(rng.choice([1, 2, 7, 25, 26, 60]))]
                    steps.append(("p" if rng.random() < 0.9 else "q", run))
            sent = []
            for together in (False, True):
                server, runner = socket.socketpair()
                self.addCleanup(server.close)
                connection = Connection(runner)
                self.addCleanup(connection.close)
                if limit:
                    connection.set_send_limit(limit)
                received = bytearray()
                reader = threading.Thread(target=lambda: received.extend(read_all(server)))
                reader.start()
                for prediction_id, run in steps:
                    if run is None:
                        connection.send("log", {"id": "p", "source": messages.LOG_STDOUT, "text": "x\n"})
                    elif together:
                        connection.hold_text_items(prediction_id, run)
                    else:
                        for text in run:
                            connection.hold_text_item(prediction_id, text)
                connection.send("done", {"id": "p", "status": messages.DONE_SUCCEEDED})
                runner.shutdown(socket.SHUT_WR)
                reader.join()
                sent.append(bytes(received))
            with self.subTest(limit=limit):
                self.assertGreater(len(split_frames(sent[0])), 100)
                self.assertEqual(sent[1], sent[0])

    def test_a_run_kept_by_its_caller_counts_its_wait_from_its_first_item(self):
        # An async generator's run is gathered by the worker before it is
        # held (Worker._take_async_batched): one whose first item is older
        # than the hold goes out at once; a fresh one waits for more.
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        connection = Connection(runner)
        self.addCleanup(connection.close)
        server.setblocking(False)
        connection.hold_text_items("p", ["a", "b"], time.monotonic())
        connection.hold_text_items("p", ["c"])
        with self.assertRaises(BlockingIOError):
            server.recv(1 << 16)
        connection.hold_text_items("p", ["d", "e"], time.monotonic() - 120)  # the hold is 60 s here
        server.setblocking(True)
        # Read once the runner's side is shut: what was only held stays out.
        self.assertEqual(self.items_of(self.all_frames(connection, server, runner)), ["a", "b", "c", "d", "e"])


def read_all(sock):
    data = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return data
        data += chunk


if __name__ == "__main__":
    unittest.main()
