"""Logs written below Python (fds 1 and 2: subprocesses, C code, os.write) land
in the logs of setup or of the prediction that wrote them, through the real
server; what belongs to no prediction goes to the server's log as JSON records,
and that log stays JSON lines whatever the predictor writes."""

import json
import threading
import unittest

from server_harness import CogServer, wait_until

WAYS = ["print", "logging", "fd1", "fd2", "subprocess", "subprocess stderr", "printf",
        "stdout.buffer", "printf without a line end"]


def lines_of(logs):
    return logs.splitlines()


class FdLogsTest(unittest.TestCase):
    def assertServerLogIsJsonLines(self, server):
        records = []
        for number, line in enumerate(server.logs().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                self.fail("server log line %d is not JSON: %r" % (number, line[:200]))
        return records

    def test_every_way_of_writing_lands_in_the_logs_of_its_own_prediction(self):
        server = CogServer("fd_logs")
        try:
            health = server.wait_for_status("READY")
            self.assertEqual(sorted(lines_of(health["setup"]["logs"])),
                             sorted("setup %s" % way for way in WAYS))
            for tag in ("first", "second", "third"):
                status, _, body = server.request("POST", "/predictions", {"input": {"tag": tag}})
                self.assertEqual((status, body["status"]), (200, "succeeded"), body)
                # Every line, each once, and nothing of the prediction before it.
                self.assertEqual(sorted(lines_of(body["logs"])), sorted("%s %s" % (tag, way) for way in WAYS))
            # The server's log has none of it.
            for record in self.assertServerLogIsJsonLines(server):
                self.assertNotIn("first", record["msg"])
        finally:
            self.assertEqual(server.stop(), 0)

    def test_garbage_and_stray_output_keep_the_server_log_json(self):
        server = CogServer("fd_logs")
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"tag": "g", "mode": "garbage"}})
            self.assertEqual((status, body["status"]), (200, "succeeded"), body)
            logs = lines_of(body["logs"])
            # A megabyte of bytes that are no UTF-8, replaced, in the prediction's logs.
            self.assertGreater(len(body["logs"]), 1 << 20)
            self.assertIn("\ufffd", body["logs"])
            # Progress bars redrawn with "\r": one line per redraw, the last one last.
            self.assertEqual(logs[-1], "1999%")
            self.assertEqual(logs.count("1000%"), 1)

            status, _, body = server.request("POST", "/predictions", {"input": {"tag": "late", "mode": "stray"}})
            self.assertEqual((status, body["logs"]), (200, ""), body)
            wait_until(lambda: "late stray after the end" in server.logs(), what="the stray line in the server log")
            wait_until(lambda: "raw bytes" in server.logs(), what="the raw bytes in the server log")
            records = self.assertServerLogIsJsonLines(server)
            stray = [r for r in records if "outside any prediction" in r["msg"]]
            self.assertEqual(stray[0]["msg"], "predictor stdout outside any prediction: late stray after the end")
            self.assertIn("raw bytes {\"not\": json", stray[1]["msg"])
            # The next prediction's logs have none of it.
            status, _, body = server.request("POST", "/predictions", {"input": {"tag": "after"}})
            self.assertNotIn("stray", body["logs"])
            self.assertEqual(self.assertServerLogIsJsonLines(server)[-1]["logger"], "cog-server")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_concurrent_async_predictions_each_get_only_their_own_lines(self):
        server = CogServer("fd_logs_async")
        try:
            server.wait_for_status("READY")
            results = {}

            def predict(tag):
                results[tag] = server.request("POST", "/predictions", {"input": {"tag": tag}})

            threads = [threading.Thread(target=predict, args=(tag,)) for tag in ("red", "blue")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            for tag in ("red", "blue"):
                status, _, body = results[tag]
                self.assertEqual((status, body["output"]), (200, tag), body)
                self.assertEqual(body["logs"], "".join("%s line %d\n" % (tag, i) for i in range(5)))
            # fd 1 is shared by both: its lines are the server's, marked, never a prediction's.
            wait_until(lambda: server.logs().count("fd line 4") == 2, what="both fd lines in the server log")
            records = self.assertServerLogIsJsonLines(server)
            fd_lines = sorted(r["msg"] for r in records if "fd line" in r["msg"])
            self.assertEqual(fd_lines, sorted("predictor stdout outside any prediction: %s fd line %d" % (tag, i)
                                              for tag in ("red", "blue") for i in range(5)))
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
