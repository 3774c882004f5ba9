"""Hostile bytes and outputs on the runner's wire cost one prediction at most.

Three ways in: the real cog-server with the real runner on a predictor that
returns NaN, outputs too large for a frame and tqdm-style progress output; the
real runner facing a server (played here) that sends frames it cannot decode;
and the real cog-server facing a runner (played here) that sends frames the
server cannot read. After each, the prediction has its documented answer, the
other side is still serving, and the next prediction succeeds.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from cog_runner import messages, wire
from server_harness import PREDICTORS, CogServer, _runfile, wait_until

RUNNER = _runfile("runner")
NOT_JSON = "JSON cannot carry NaN or Infinity; return None or a string instead"


class Framed:
    """One end of the runner protocol over a stream socket."""

    def __init__(self, sock: socket.socket, receive_table: dict, send_table: dict):
        self.sock = sock
        self.sock.settimeout(60)
        self.receive_table = receive_table
        self.send_table = send_table

    def send(self, name, fields):
        self.sock.sendall(bytes(wire.encode_frame(self.send_table, {name: fields})))

    def send_payload(self, payload: bytes):
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def _exactly(self, size):
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                raise EOFError("the peer closed the connection")
            data += chunk
        return bytes(data)

    def receive(self):
        (size,) = struct.unpack(">I", self._exactly(4))
        message = wire.decode(self.receive_table, self._exactly(size))
        name = messages.which(message)
        return name, message.get(name, {})


def predictions_api_request(kind, n=0):
    return {"input": {"kind": kind, "n": n}}


def polled(test, server, kind, n=0):
    """Runs a prediction with Prefer: respond-async (its items go one by one)
    and polls it until it ends; its final state."""
    status, _, body = server.request("POST", "/predictions", body=predictions_api_request(kind, n),
                                     headers={"Prefer": "respond-async"})
    test.assertEqual(status, 202, body)
    path = "/predictions/" + body["id"]

    def ended():
        status, _, body = server.request("GET", path)
        test.assertEqual(status, 200, body)
        return body if body["status"] not in ("starting", "processing") else None
    return wait_until(ended, timeout=120, what="the polled prediction %s to end" % body["id"])


class OutputsThroughTheServerTest(unittest.TestCase):
    """The real binary and the real runner on tests/predictors/hostile_outputs."""

    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("hostile_outputs")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def predict(self, kind, n=0):
        status, _, body = self.server.request("POST", "/predictions", body=predictions_api_request(kind, n),
                                              timeout=300)
        self.assertEqual(status, 200, body)
        return body

    def assert_serving(self):
        self.assertEqual(self.server.health()["status"], "READY")
        self.assertEqual(self.predict("fine")["output"], "fine")

    def test_nan_and_infinity_fail_the_prediction_saying_where(self):
        cases = {
            "nan": "output is nan",
            "inf_in_list": "output[2] is inf",
            "nan_in_dict": "output['scores']['mean'] is -inf",
            "nan_in_object": "output[0].values[1] is nan",
            "nan_item": "output[2] is nan",
            "nan_metric": "metric 'loss'[1] is nan",
        }
        for kind, where in cases.items():
            with self.subTest(kind):
                body = self.predict(kind)
                self.assertEqual(body["status"], "failed")
                self.assertEqual(body["error"], "%s: %s" % (where, NOT_JSON))
                self.assert_serving()
        # The items before the bad one were streamed and stay.
        self.assertEqual(self.predict("nan_item")["output"], [0.5, 1.5])

    # The runner holds a sync prediction's short str items and sends them
    # several to a frame (Predict.batch_text_items); a polled prediction's go
    # one by one. Both must give the same output, item for item.
    TEXTS = ['"quoted"', "back\\slash", "new\nline", "\x01\x1f\x7f", "é ✓ 😀", "x" * 256, "y" * 257, ""]

    def polled(self, kind, n):
        return polled(self, self.server, kind, n)

    def test_str_items_sent_several_to_a_frame_are_the_list_sent_one_by_one(self):
        n = 6000  # tokens enough for several held frames of up to 64 KiB
        expected = self.TEXTS + [1, None, {"a": "b"}] + ["t%d" % i for i in range(n)] + ["after a pause"]
        together = self.predict("texts", n)
        self.assertEqual(together["status"], "succeeded", together.get("error"))
        self.assertEqual(together["output"], expected)
        self.assertIn("a print between items", together["logs"])
        one_by_one = self.polled("texts", n)
        self.assertEqual(one_by_one["status"], "succeeded", one_by_one.get("error"))
        self.assertEqual(one_by_one["output"], expected)

    def test_items_yielded_before_the_generator_raises_are_kept_held_or_not(self):
        # The runner takes a sync prediction's items several at a time (runs
        # of 1, 2, 4, ... 25); 40 ends in the middle of a run.
        for n in (1, 40, 100):
            with self.subTest(n=n):
                together = self.predict("texts_then_raise", n)
                one_by_one = self.polled("texts_then_raise", n)
                for body in (together, one_by_one):
                    self.assertEqual(body["status"], "failed")
                    self.assertEqual(body["error"], "the model's own error after %d items" % n)
                    self.assertEqual(body["output"], ["t%d" % i for i in range(n)])
        self.assert_serving()

    def test_an_object_changed_after_it_was_yielded_is_sent_as_it_was(self):
        # A generator that yields one list again and again, appending to it in
        # between: each item is what the list was when it was yielded, also
        # when the runner takes str items before it in long runs.
        expected = ["t%d" % i for i in range(40)] + [list(range(i + 1)) for i in range(5)] + ["end"]
        for body in (self.predict("accumulating", 40), self.polled("accumulating", 40)):
            self.assertEqual(body["status"], "succeeded", body.get("error"))
            self.assertEqual(body["output"], expected)

    def test_a_lone_surrogate_item_ends_the_same_held_or_not(self):
        together = self.predict("texts_surrogate", 10)
        one_by_one = self.polled("texts_surrogate", 10)
        for body in (together, one_by_one):
            self.assertEqual(body["status"], "failed")
            self.assertIn("not valid Unicode (a lone surrogate, \\ud800)", body["error"])
        self.assertEqual(together["output"], one_by_one["output"])
        self.assert_serving()

    def test_an_output_with_a_lone_surrogate_fails_saying_so(self):
        for n, escape in ((0, "\\udc80"), (1, "\\ud800")):  # a str, and one nested after a valid pair
            body = self.predict("surrogate_output", n)
            self.assertEqual(body["status"], "failed", body)
            self.assertEqual(body["error"], "cog-server could not read the output from the runner: it holds a "
                             "str that is not valid Unicode (a lone surrogate, %s), which cannot be written as "
                             "UTF-8; replace it, e.g. s.encode('utf-8', 'replace').decode()" % escape)
            self.assertIsNone(body["output"])
        self.assert_serving()

    def test_an_output_over_the_default_frame_limit_fails_only_its_prediction(self):
        body = self.predict("big", 300_000_000)  # the size that made the server DEFUNCT
        self.assertEqual(body["status"], "failed")
        self.assertRegex(body["error"], r"^output is 300000000 bytes as UTF-8, over the limit of \d+ bytes")
        self.assertIn("--max-output-bytes", body["error"])
        self.assertIsNone(body["output"])
        self.assert_serving()

    def test_text_that_is_not_utf8_is_printed_without_harm(self):
        body = self.predict("surrogate")
        self.assertEqual(body["status"], "succeeded")
        self.assertIn("name: ", body["logs"])

    def test_carriage_return_progress_is_linear_and_shows_one_line_per_redraw(self):
        timings = {}
        for n in (5000, 40000):
            started = time.monotonic()
            body = self.predict("progress", n)
            timings[n] = time.monotonic() - started
            self.assertEqual(body["status"], "succeeded")
            expected = "".join("%d/%d\n" % (i, n) for i in range(1, n + 1)) + "after\n"
            self.assertEqual(body["logs"], expected)
        print("\n\\r progress writes, sync request: 5k %.3f s, 40k %.3f s (%.1fx for 8x the writes)"
              % (timings[5000], timings[40000], timings[40000] / timings[5000]))


class AsyncGeneratorOutputsTest(unittest.TestCase):
    """tests/predictors/hostile_async_gen: async generators, several at once.
    A sync request's short str items are gathered by the runner in runs and
    held in one call (Worker._take_async_batched); a polled prediction's go
    one by one. Both must give the same output, item for item."""

    LIMIT = 1_000_000  # ~11,600 short items

    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("hostile_async_gen", args=["--max-output-bytes", str(cls.LIMIT)])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def predict(self, kind, n=0, path="/predictions", method="POST"):
        status, _, body = self.server.request(method, path, body=predictions_api_request(kind, n), timeout=120)
        self.assertEqual(status, 200, body)
        return body

    def polled(self, kind, n):
        return polled(self, self.server, kind, n)

    def assert_serving(self):
        self.assertEqual(self.server.health()["status"], "READY")
        self.assertEqual(self.predict("fine")["output"], ["fine"])

    def test_str_items_gathered_in_runs_are_the_list_sent_one_by_one(self):
        n = 6000  # tokens for several runs of 100 and frames of them
        expected = OutputsThroughTheServerTest.TEXTS + [1, None, {"a": "b"}] + ["t%d" % i for i in range(n)] + [
            "after a pause"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # running at once, their items interleave
            together = list(pool.map(lambda _: self.predict("texts", n), range(3)))
        together.append(self.predict("texts", n))
        for body in together + [self.polled("texts", n)]:
            self.assertEqual(body["status"], "succeeded", body.get("error"))
            self.assertEqual(body["output"], expected)
            self.assertIn("a print between items", body["logs"])

    def test_items_yielded_before_the_generator_raises_are_kept(self):
        # 40 and 250 end in the middle of a run of 100.
        for n in (1, 40, 100, 250):
            with self.subTest(n=n):
                for body in (self.predict("texts_then_raise", n), self.polled("texts_then_raise", n)):
                    self.assertEqual(body["status"], "failed")
                    self.assertEqual(body["error"], "the model's own error after %d items" % n)
                    self.assertEqual(body["output"], ["t%d" % i for i in range(n)])
        self.assert_serving()

    def test_a_canceled_generator_keeps_the_items_it_yielded_in_order(self):
        # ~1,000 items a second: the first run goes out after 50 ms, and the
        # cancel lands while a later one is gathered (long before the outputs
        # reach --max-output-bytes). That run goes out before the
        # prediction's end, nothing lost or repeated.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(self.predict, "paced", 1_000_000, "/predictions/paced-to-cancel", "PUT")
            wait_until(lambda: len(self.server.request("GET", "/predictions/paced-to-cancel")[2].get("output")
                                   or []) > 30, timeout=60, what="items of the paced prediction")
            status, _, answer = self.server.request("POST", "/predictions/paced-to-cancel/cancel")
            self.assertEqual(status, 200, answer)
            body = waiting.result(timeout=60)
        self.assertEqual(body["status"], "canceled", body.get("error"))
        yielded = re.search(r"yielded (\d+) items", body["logs"])
        self.assertIsNotNone(yielded, body["logs"])
        self.assertGreater(int(yielded.group(1)), 30)
        self.assertTrue(body["output"] == ["t%d" % i for i in range(int(yielded.group(1)))],
                        "items lost, repeated or out of order")
        self.assert_serving()

    def test_a_generator_that_never_ends_is_stopped_at_the_limit_in_all(self):
        runners = self.server.runner_pids()
        body = self.predict("endless")
        self.assertEqual(body["status"], "failed")
        self.assertIn("outputs passed --max-output-bytes (%d bytes in all" % self.LIMIT, body["error"])
        self.assertIsNone(body["output"])
        self.assert_serving()
        self.assertEqual(self.server.runner_pids(), runners, "the runner was replaced, not canceled")


class OutputLimitFlagTest(unittest.TestCase):
    """--max-output-bytes reaches the runner: outputs over it fail, logs are split."""

    LIMIT = 100_000

    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("hostile_outputs", args=["--max-output-bytes", str(cls.LIMIT)])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def predict(self, kind, n=0):
        status, _, body = self.server.request("POST", "/predictions", body=predictions_api_request(kind, n))
        self.assertEqual(status, 200, body)
        return body

    def test_outputs_over_the_limit_fail_naming_it(self):
        for kind, where in (("big", "output"), ("big_item", "output[1]")):
            with self.subTest(kind):
                body = self.predict(kind, 2 * self.LIMIT)
                self.assertEqual(body["status"], "failed")
                self.assertTrue(body["error"].startswith(
                    "%s is %d bytes as UTF-8, over the limit of %d bytes" % (where, 2 * self.LIMIT, self.LIMIT)),
                    body["error"])
                self.assertIn("--max-output-bytes", body["error"])
                self.assertEqual(self.server.health()["status"], "READY")
                self.assertEqual(self.predict("fine")["status"], "succeeded")

    def test_a_generator_that_never_ends_is_stopped_at_the_limit_in_all(self):
        # Each item is far under the limit, but the outputs a prediction keeps
        # until it ends are bounded in all: the generator is stopped, the
        # prediction fails saying why, and the runner (not replaced) serves on.
        runners = self.server.runner_pids()
        for prefer in ("", "respond-async"):  # items held and sent in runs, or one by one
            with self.subTest(prefer=prefer or "sync"):
                body = polled(self, self.server, "endless") if prefer else self.predict("endless")
                self.assertEqual(body["status"], "failed")
                self.assertIn("outputs passed --max-output-bytes (%d bytes in all" % self.LIMIT, body["error"])
                self.assertIsNone(body["output"])
                self.assertEqual(self.predict("fine")["status"], "succeeded")
        self.assertEqual(self.server.runner_pids(), runners, "the runner was replaced, not canceled")

    def test_a_generator_deaf_to_its_cancel_still_fails_for_its_outputs(self):
        # Over the bound, the cancel is ignored: the runner is replaced after
        # --cancel-timeout, and the prediction still fails for its outputs,
        # not "canceled" (no one asked for that).
        server = CogServer("hostile_outputs", args=["--max-output-bytes", str(self.LIMIT), "--cancel-timeout", "1"])
        try:
            server.wait_for_status("READY")
            runners = server.runner_pids()
            status, _, body = server.request("POST", "/predictions", body=predictions_api_request("endless_deaf"),
                                             timeout=120)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["status"], "failed")
            self.assertIn("outputs passed --max-output-bytes", body["error"])
            self.assertIn("did not stop within", body["logs"])
            server.wait_for_status("READY", timeout=60)
            self.assertNotEqual(server.runner_pids(), runners, "the deaf runner should have been replaced")
        finally:
            server.close()

    def test_files_count_as_the_data_uris_they_become(self):
        # A file output becomes a data: URI of the whole file (no upload URL):
        # what the server keeps is counted, not the short URL that came.
        body = self.predict("endless_files", 64 << 10)  # each URI ~87 KB; the limit is 100 KB
        self.assertEqual(body["status"], "failed")
        self.assertIn("outputs passed --max-output-bytes", body["error"])
        self.assertTrue(body["error"].endswith("after 1 item; it was stopped"), body["error"])

    def test_logs_longer_than_the_limit_arrive_whole(self):
        body = self.predict("big_log", 3 * self.LIMIT)
        self.assertEqual(body["status"], "succeeded")
        self.assertEqual(body["logs"], "z" * (3 * self.LIMIT) + "\n")


class RunnerFacingAHostileServerTest(unittest.TestCase):
    """The real runner; this test is its server."""

    LIMIT = 50_000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cog-hostile-")
        path = os.path.join(self.tmp, "s")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(60)
        code = ("import sys; sys.path.insert(0, %r)\nfrom cog_runner.__main__ import main\n"
                "sys.exit(main(sys.argv[1:]))" % RUNNER)
        self.runner = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, "--socket", path, "--working-directory",
             os.path.join(PREDICTORS, "hostile_outputs"), "--predict", "predict.py:Predictor"])
        connection, _ = listener.accept()
        listener.close()
        self.wire = Framed(connection, messages.RUNNER_MESSAGE, messages.SERVER_MESSAGE)
        name, hello = self.wire.receive()
        self.assertEqual(name, "hello")
        self.assertEqual(hello["load_error"], "")
        self.wire.send("setup", {"max_frame_bytes": self.LIMIT})
        self.assertEqual(self.next_frame("setup_done"), {"succeeded": True, "error": ""})

    def tearDown(self):
        try:
            self.wire.send("shutdown", {})
            self.assertEqual(self.runner.wait(60), 0)
        finally:
            if self.runner.poll() is None:
                self.runner.kill()
                self.runner.wait()
            self.wire.sock.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def next_frame(self, wanted, collect=None):
        while True:
            name, fields = self.wire.receive()
            if name == wanted:
                return fields
            if collect is not None:
                collect.append((name, fields))

    def predict(self, prediction_id, kind, n=0):
        """The Done of one prediction, and the frames that came before it."""
        self.wire.send("predict", {"id": prediction_id, "input_json": json.dumps({"kind": kind, "n": n}).encode()})
        before = []
        done = self.next_frame("done", before)
        self.assertEqual(done["id"], prediction_id)
        return done, before

    def test_frames_that_do_not_decode_are_reported_and_the_runner_serves_on(self):
        predict = wire.encode(messages.SERVER_MESSAGE, {"predict": {"id": "p-cut", "input_json": b'{"kind": "x"}'}})
        bad_frames = [
            (b"\xff" * 11, b""),  # a varint that never ends
            (predict[:-3], b"p-cut"),  # a Predict cut short: its id is still whole
            (b"\x12\x04\x0a\x02\xff\xfe", b"\xff\xfe"),  # a Predict whose id is not UTF-8
            (b"\x12\x02\x0f\x00", b""),  # wire type 7
            (b"\x1a\x03\x0a\x01", b""),  # a Cancel whose field outruns it
        ]
        for payload, _ in bad_frames:
            self.wire.send_payload(payload)
        for payload, prediction_id in bad_frames:
            report = self.next_frame("bad_frame")
            self.assertEqual(report["id"], prediction_id, payload.hex())
            self.assertTrue(report["error"], payload.hex())
        done, _ = self.predict("p-ok", "fine")
        self.assertEqual(done["status"], messages.DONE_SUCCEEDED)
        self.assertEqual(done["output_text"], b"fine")  # a str travels as its UTF-8 bytes

    def test_outputs_over_the_servers_limit_fail_their_prediction(self):
        done, _ = self.predict("p-big", "big", 2 * self.LIMIT)
        self.assertEqual(done["status"], messages.DONE_FAILED)
        self.assertIn("over the limit of %d bytes" % self.LIMIT, done["error"])
        self.assertEqual((done["output_json"], done["output_text"]), (b"", b""))

        done, before = self.predict("p-item", "big_item", 2 * self.LIMIT)
        self.assertEqual(done["status"], messages.DONE_FAILED)
        self.assertTrue(done["error"].startswith("output[1] is %d bytes as UTF-8" % (2 * self.LIMIT)), done["error"])
        self.assertEqual([f["value_text"] for name, f in before if name == "output"], [b"small"])

        done, before = self.predict("p-log", "big_log", 3 * self.LIMIT)
        self.assertEqual(done["status"], messages.DONE_SUCCEEDED)
        logs = [f["text"] for name, f in before if name == "log"]
        self.assertEqual("".join(logs), "z" * (3 * self.LIMIT) + "\n")
        self.assertGreater(len(logs), 1)

        done, _ = self.predict("p-ok", "fine")
        self.assertEqual(done["status"], messages.DONE_SUCCEEDED)


class ServerFacingAHostileRunnerTest(unittest.TestCase):
    """The real cog-server waiting for a runner (--spawn-runner=false); this test is the runner."""

    def setUp(self):
        self.socket_dir = tempfile.mkdtemp(prefix="cog-sidecar-")
        path = os.path.join(self.socket_dir, "runner.sock")
        self.server = CogServer("echo", args=["--spawn-runner=false", "--runner-socket", path])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_until(lambda: os.path.exists(path), what="the runner socket")
        sock.connect(path)
        self.wire = Framed(sock, messages.SERVER_MESSAGE, messages.RUNNER_MESSAGE)
        from cog_runner.predictor_ref import load
        from cog_runner.schema import predictor_document
        loaded = load("predict.py:Predictor", os.path.join(PREDICTORS, "echo"))
        document = predictor_document(loaded.signature_source, True)
        self.wire.send("hello", {"protocol_version": messages.PROTOCOL_VERSION, "runner_version": "test",
                                 "pid": os.getpid(), "openapi_json": json.dumps(document).encode(),
                                 "max_concurrency": 1})
        self.setup = self.next_frame("setup")
        self.wire.send("setup_done", {"succeeded": True})
        self.server.wait_for_status("READY")
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    def tearDown(self):
        self.pool.shutdown()
        self.wire.sock.close()
        self.server.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def next_frame(self, wanted):
        while True:
            name, fields = self.wire.receive()
            if name == "healthcheck":
                self.wire.send("healthcheck_result", {"sequence": fields["sequence"], "healthy": True})
            elif name == wanted:
                return fields

    def predict(self, answer):
        """Runs one prediction; `answer(id)` plays the runner's part. The response body."""
        future = self.pool.submit(self.server.request, "POST", "/predictions", {"input": {"s": "hi"}})
        self.last_predict = self.next_frame("predict")
        answer(self.last_predict["id"])
        status, _, body = future.result(timeout=120)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.server.health()["status"], "READY")
        return body

    def done(self, prediction_id):
        self.wire.send("done", {"id": prediction_id, "status": messages.DONE_SUCCEEDED, "output_json": b'"ok"'})

    def test_frames_the_server_cannot_read_fail_one_prediction_each(self):
        # A Done whose error text is not UTF-8: it does not parse as a RunnerMessage.
        def unparsable(prediction_id):
            inner = wire.encode(messages.DONE, {"id": prediction_id, "status": messages.DONE_SUCCEEDED})
            inner += b"\x1a\x02\xff\xfe"
            self.wire.send_payload(b"\x32" + bytes([len(inner)]) + inner)
        body = self.predict(unparsable)
        self.assertEqual(body["status"], "failed")
        self.assertIn("not a valid cog.v1.runner.RunnerMessage", body["error"])

        # An Output of 300 MB: over the server's frame limit, skipped as it arrives.
        def oversized(prediction_id):
            self.wire.send("log", {"id": prediction_id, "text": "working\n"})
            head = wire.encode(messages.OUTPUT, {"id": prediction_id})
            value = 300_000_000
            inner_size = len(head) + 1 + len(_varint(value)) + value
            header = b"\x22" + _varint(inner_size) + head + b"\x12" + _varint(value)
            self.wire.sock.sendall(struct.pack(">I", len(header) + value) + header)
            chunk = b"x" * (1 << 20)
            for sent in range(0, value, len(chunk)):
                self.wire.sock.sendall(chunk[:min(len(chunk), value - sent)])
        body = self.predict(oversized)
        self.assertEqual(body["status"], "failed")
        self.assertRegex(body["error"], r"a frame of \d+ bytes, over the limit of \d+")
        self.assertIn("--max-output-bytes", body["error"])
        self.assertEqual(body["logs"], "working\n")

        # The runner could not decode the Predict: it says so.
        body = self.predict(lambda prediction_id: self.wire.send(
            "bad_frame", {"error": "truncated varint", "id": prediction_id.encode()}))
        self.assertEqual(body["status"], "failed")
        self.assertEqual(body["error"], "the runner could not read the request of this prediction: truncated varint")

        body = self.predict(self.done)
        self.assertEqual((body["status"], body["output"]), ("succeeded", "ok"))
        logs = self.server.logs()
        self.assertIn("skipped a frame from the runner", logs)
        self.assertIn("the runner could not decode a frame from the server", logs)

    def test_path_outputs_are_read_only_from_the_shared_files_directory(self):
        # A runner elsewhere (a sidecar's model container) names a file of the
        # server's own container: a service account token, say.
        outside = os.path.join(self.socket_dir, "secret.txt")
        with open(outside, "w") as f:
            f.write("the server's own file")
        files_dir = self.setup["files_dir"]
        self.assertTrue(os.path.isdir(files_dir), self.setup)
        # This runner's Hello does not say it copies Path outputs there: said in setup's logs.
        self.assertIn("[cog-server: runner test does not copy Path outputs into the directory this server "
                      "shares with it (--files-dir); every Path output will be refused",
                      self.server.health()["setup"]["logs"])
        seen = {}

        def returns(path_of):
            def answer(prediction_id):
                seen["output_dir"] = output_dir = self.last_predict["output_dir"]
                path = path_of(output_dir)
                self.wire.send("done", {"id": prediction_id, "status": messages.DONE_SUCCEEDED,
                                        "output_json": json.dumps(pathlib.Path(path).as_uri()).encode(),
                                        "files_json": b'[""]'})
            return answer

        def link_in(output_dir):
            os.makedirs(output_dir, exist_ok=True)
            os.symlink(outside, os.path.join(output_dir, "innocent.txt"))
            return os.path.join(output_dir, "innocent.txt")

        def dotdot(output_dir):
            os.makedirs(output_dir, exist_ok=True)
            return os.path.join(output_dir, os.path.relpath(outside, output_dir))

        for path_of in (lambda output_dir: outside, link_in, dotdot):
            body = self.predict(returns(path_of))
            self.assertEqual(body["status"], "failed", body)
            self.assertIn("is outside %s, the files directory cog-server shares with a runner started "
                          "elsewhere (--files-dir)" % files_dir, body["error"])
            self.assertNotIn("the server's own", json.dumps(body))
            self.assertTrue(seen["output_dir"].startswith(files_dir + "/p"), seen)

        def inside(output_dir):
            os.makedirs(output_dir, exist_ok=True)
            with open(os.path.join(output_dir, "out.txt"), "w") as f:
                f.write("shared")
            return os.path.join(output_dir, "out.txt")
        body = self.predict(returns(inside))
        self.assertEqual((body["status"], body["output"]), ("succeeded", "data:text/plain;base64,c2hhcmVk"))
        wait_until(lambda: not os.path.exists(seen["output_dir"]), what="the prediction's directory to go")


def _varint(value: int) -> bytes:
    out = bytearray()
    wire._encode_varint(value, out)
    return bytes(out)


if __name__ == "__main__":
    unittest.main()
