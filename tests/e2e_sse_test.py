"""Server-sent events through the real binary: `Accept: text/event-stream` on
POST /predictions streams start, output, logs, metric and completed events,
ends after completed, and a client that goes away cancels the prediction."""

import http.client
import json
import os
import shutil
import socket
import tempfile
import time
import unittest

from http_receiver import Receiver
from server_harness import CogServer, rss_kib, wait_until


def open_stream(server, body):
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    connection.request("POST", "/predictions", body=json.dumps(body),
                       headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    return connection, connection.getresponse()


def read_events(response, stop_after=None):
    """[(event, data)] until the stream ends (or `stop_after` events)."""
    events, name, data = [], None, []
    while stop_after is None or len(events) < stop_after:
        line = response.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and name is not None:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
    return events


class StreamTest(unittest.TestCase):
    def serve(self, predictor):
        server = CogServer(predictor)
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        return server

    def read_late(self, server, body, pause):
        """The events of a stream whose client reads nothing for `pause` seconds,
        through a 4 KiB receive buffer."""
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
        self.addCleanup(connection.close)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.http_port))
        connection.sock = sock
        connection.request("POST", "/predictions", body=json.dumps(body),
                           headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        time.sleep(pause)
        return read_events(connection.getresponse())

    @unittest.skipIf(os.environ.get("COG_SANITIZER"), "a sanitizer's allocator and shadow memory")
    def test_logs_wait_for_a_slow_client_bounded_and_it_is_told_what_was_left_out(self):
        # 128 MiB printed to a client that reads nothing until the prediction
        # has ended: at most --max-log-bytes (2 MiB here) of logs wait for it
        # (the server grew by all 128 MiB, and by 1 GiB for 1 GiB, before).
        server = CogServer("log_flood", args=["--max-log-bytes", str(2 << 20)])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        before = rss_kib(server.process.pid)
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.http_port))
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
        connection.sock = sock
        connection.request("POST", "/predictions", body=json.dumps({"id": "flood", "input": {"mb": 128}}),
                           headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        wait_until(lambda: server.request("GET", "/predictions/flood")[2]["status"] == "succeeded",
                   timeout=60, what="the prediction to end")
        grown = rss_kib(server.process.pid) - before
        events = read_events(connection.getresponse())
        logs = "".join(data["text"] for name, data in events if name == "logs")
        self.assertLess(grown, 48 << 10, "the server grew by %d KiB for a stream's logs" % grown)
        self.assertRegex(logs, r"\[cog-server: \d+ bytes of logs left out of this stream here: its client read "
                         r"them more slowly than they came")
        self.assertLess(len(logs), 16 << 20)
        self.assertEqual(events[-1][0], "completed")
        self.assertEqual((events[-1][1]["status"], events[-1][1]["output"]), ("succeeded", "done"))
        self.assertIn("--max-log-bytes keeps the last", events[-1][1]["logs"])  # the prediction's own
        # A burst within the bound reaches a client that reads it, whole.
        connection, response = open_stream(server, {"input": {"mb": 1}})
        events = read_events(response)
        connection.close()
        logs = "".join(data["text"] for name, data in events if name == "logs")
        self.assertEqual(len(logs), 1 << 20)

    def test_an_iterator_streams_item_by_item_with_its_logs(self):
        server = self.serve("logs_gen")
        connection, response = open_stream(server, {"id": "s-1", "input": {"n": 3}})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("Content-Type"), "text/event-stream")
        events = read_events(response)
        connection.close()
        names = [name for name, _ in events]
        self.assertEqual(names[0], "start")
        self.assertEqual(events[0][1]["status"], "processing")
        self.assertEqual(events[0][1]["id"], "s-1")
        self.assertEqual(names[-1], "completed", "the stream ends with completed")
        self.assertEqual(events[-1][1]["status"], "succeeded")
        self.assertEqual(events[-1][1]["output"], ["chunk0", "chunk1", "chunk2"])
        outputs = [data for name, data in events if name == "output"]
        self.assertEqual(outputs, [{"index": i, "value": "chunk%d" % i} for i in range(3)])
        logs = "".join(data["text"] for name, data in events if name == "logs")
        for i in range(3):
            self.assertIn("log line %d\n" % i, logs)
            self.assertIn("stderr line %d\n" % i, logs)
        # Each item arrives after its own log line, before the next one's.
        order = [(name, data.get("value") or data.get("text")) for name, data in events if name in ("output", "logs")]
        self.assertLess(order.index(("logs", "log line 1\n")), order.index(("output", "chunk1")))

    def test_each_item_arrives_while_the_predictor_still_runs(self):
        # Items yielded together are not held back for a stream (the runner
        # batches outputs only when no one takes them one by one): the
        # predictor waits for this client to have seen three before it ends.
        server = self.serve("gated_gen")
        gate = os.path.join(tempfile.mkdtemp(), "seen")
        self.addCleanup(shutil.rmtree, os.path.dirname(gate), True)
        connection, response = open_stream(server, {"input": {"gate": gate, "first": 3}})
        self.addCleanup(connection.close)
        seen = []
        while len(seen) < 3:
            events = read_events(response, stop_after=1)
            self.assertTrue(events, "the stream ended before three items")
            name, data = events[0]
            self.assertNotEqual(name, "completed", data)
            if name == "output":
                seen.append(data["value"])
        open(gate, "w").close()
        events = read_events(response)
        self.assertEqual(events[-1][0], "completed")
        self.assertEqual(events[-1][1]["status"], "succeeded", events[-1][1].get("error"))
        self.assertEqual(seen + [data["value"] for name, data in events if name == "output"],
                         ["item0", "item1", "item2", "last"])

    def test_an_async_prediction_shows_each_item_to_a_poller(self):
        # Without webhooks or a stream, GET /predictions/{id} is how its items
        # are seen: they are not held back either.
        server = self.serve("gated_gen")
        gate = os.path.join(tempfile.mkdtemp(), "seen")
        self.addCleanup(shutil.rmtree, os.path.dirname(gate), True)
        status, _, body = server.request("POST", "/predictions", {"id": "polled", "input": {"gate": gate, "first": 2}},
                                         headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, body)

        def polled():
            status, _, body = server.request("GET", "/predictions/polled")
            self.assertEqual(status, 200, body)
            return body

        def both_items_shown():
            body = polled()
            self.assertEqual(body["status"], "processing", body)
            return body["output"] == ["item0", "item1"]

        wait_until(both_items_shown, 20, "both items in GET /predictions/polled while it runs")
        open(gate, "w").close()

        def ended():
            body = polled()
            return body if body["status"] != "processing" else None

        body = wait_until(ended, 20, "the prediction to end")
        self.assertEqual((body["status"], body["output"]), ("succeeded", ["item0", "item1", "last"]), body)

    def test_a_burst_read_late_through_a_small_buffer_arrives_whole_and_in_order(self):
        # The thread that reads the runner writes an event itself when the
        # socket takes it and nothing is queued; otherwise the connection's
        # thread writes it, after what a direct write left. A client that
        # reads nothing for half a second through a 4 KiB receive buffer,
        # while 20,000 items (~1 MB of events) come as fast as the predictor
        # yields them, gets all three: every event must arrive once, in order.
        server = self.serve("async_gen_many")
        n = 20000
        events = self.read_late(server, {"input": {"tag": "t", "n": n}}, 0.5)
        expected = ["t-%d" % i for i in range(n)] + ['t é ✓ 😀 "end"\n']
        outputs = [data for name, data in events if name == "output"]
        self.assertEqual(len(outputs), len(expected))
        self.assertTrue(outputs == [{"index": i, "value": value} for i, value in enumerate(expected)],
                        "events lost, repeated or out of order")
        self.assertEqual([name for name, _ in events if name != "output"], ["start", "completed"])
        self.assertEqual(events[-1][1]["output"], expected)

    def test_paced_items_to_a_full_socket_arrive_whole_and_in_order(self):
        # Items 0.3 ms apart go out from the thread that reads the runner (no
        # burst to leave to the connection's thread); once the client's socket
        # is full, such a write takes part of an event or none, and the
        # connection's thread must send what it left before anything after it.
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\n',
            "predict.py": (
                "import time\n"
                "from typing import Iterator\n"
                "from cog import BasePredictor\n\n\n"
                "class Predictor(BasePredictor):\n"
                "    def predict(self, n: int, size: int, gap: float) -> Iterator[str]:\n"
                "        for i in range(n):\n"
                "            time.sleep(gap)\n"
                "            yield str(i) + ':' + 'x' * size\n")})
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        n, size = 600, 4000
        events = self.read_late(server, {"input": {"n": n, "size": size, "gap": 0.0003}}, 1)
        outputs = [data for name, data in events if name == "output"]
        self.assertEqual(len(outputs), n)
        self.assertTrue(outputs == [{"index": i, "value": "%d:%s" % (i, "x" * size)} for i in range(n)],
                        "events lost, repeated, cut or out of order")
        self.assertEqual([name for name, _ in events if name != "output"], ["start", "completed"])

    def test_metrics_and_a_plain_return_value(self):
        server = self.serve("forms_metrics")
        connection, response = open_stream(server, {"input": {"n": 2}, "context": {"user": "ada"}})
        events = read_events(response)
        connection.close()
        metrics = [data for name, data in events if name == "metric"]
        self.assertEqual(metrics[:2], [{"name": "tokens", "value": 1}, {"name": "steps", "value": "s"}])
        self.assertIn({"name": "temperature", "value": 0.5}, metrics)
        self.assertEqual(events[-1][0], "completed")
        self.assertEqual(events[-1][1]["output"], "ada")
        self.assertEqual(events[-1][1]["metrics"]["tokens"], 2)

    def test_errors_before_the_start_are_plain_json(self):
        server = self.serve("echo")
        connection, response = open_stream(server, {"input": {}})
        self.assertEqual(response.status, 422)
        self.assertEqual(response.getheader("Content-Type"), "application/json")
        self.assertEqual(json.loads(response.read())["detail"][0]["type"], "missing")
        connection.close()

    def test_a_client_that_goes_away_cancels_the_prediction(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        gates = tempfile.mkdtemp(prefix="cog-gates-")
        self.addCleanup(shutil.rmtree, gates, True)
        server = self.serve("gate")
        connection, response = open_stream(server, {"input": {"gate": os.path.join(gates, "never")},
                                                    "webhook": receiver.url + "/hook"})
        self.assertEqual(read_events(response, stop_after=1)[0][0], "start")
        connection.close()
        receiver.wait_for(lambda: receiver.bodies("/hook") and receiver.bodies("/hook")[-1]["status"] == "canceled",
                          what="the prediction to be canceled")
        server.wait_for_status("READY")


if __name__ == "__main__":
    unittest.main()
