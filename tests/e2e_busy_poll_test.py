"""The server's reader polls the runner's socket (--busy-poll-us) without losing anything.

Sequential predictions over one keep-alive connection are answered in order and
show in GET /metrics as waits that polling caught; a prediction that is
canceled, or whose runner is SIGKILLed, while the reader polls for its Done
ends as it would without polling, and the runner is replaced; an idle server
does not poll; one usable CPU, or --busy-poll-us=0, turns polling off, and the
server says so.
"""

import http.client
import json
import os
import re
import signal
import threading
import unittest

from server_harness import CogServer, process_alive, wait_until

# Says nothing until it returns (no log line, no output before its Done), so
# that the reader polls for that Done for as long as the bound allows.
SILENT = {
    "cog.yaml": 'predict: "predict.py:Predictor"\n',
    "predict.py": (
        "import os\nimport time\n\nfrom cog import BasePredictor\n\n\n"
        "class Predictor(BasePredictor):\n"
        "    def setup(self) -> None:\n"
        "        print(f'setup in pid {os.getpid()}')\n\n"
        "    def predict(self, s: str = '', gate: str = '') -> str:\n"
        "        if gate:\n"
        "            open(gate + '.inside', 'w').close()\n"
        "            while not os.path.exists(gate):\n"
        "                time.sleep(0.005)\n"
        "        return s\n"),
}


def polls(server):
    """{'caught': n, 'missed': n} from GET /metrics, or None if it has no such counter."""
    status, _, text = server.request("GET", "/metrics")
    assert status == 200, text
    found = dict(re.findall(r'^cog_runner_frame_polls_total\{result="(\w+)"\} (\d+)$', text, re.M))
    return {k: int(v) for k, v in found.items()} or None


def runner_pid(server):
    found = re.fullmatch(r"setup in pid (\d+)\n", server.health()["setup"]["logs"])
    assert found, server.health()
    return int(found.group(1))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BusyPollTest(unittest.TestCase):
    def start(self, *args):
        server = CogServer(files=SILENT, args=list(args))
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        if "busy polling the runner's socket is off" in server.logs():
            # Only where the machine, or its cgroup's CPU quota, gives fewer than 2 CPUs.
            self.assertRegex(server.logs(), r"off: [01]\.\d\d CPUs usable")
            self.skipTest("fewer than 2 usable CPUs: " + server.logs())
        self.assertIn("busy polling the runner's socket for up to", server.logs())
        return server

    def test_sequential_predictions_are_answered_in_order_and_polls_catch_them(self):
        server = self.start("--busy-poll-us", "20000")
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
        try:
            for i in range(200):
                connection.request("POST", "/predictions", body=json.dumps({"input": {"s": "n%d" % i}}),
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                body = json.loads(response.read())
                self.assertEqual((response.status, body["status"], body["output"]), (200, "succeeded", "n%d" % i))
        finally:
            connection.close()
        counts = polls(server)
        self.assertIsNotNone(counts, "GET /metrics has no cog_runner_frame_polls_total")
        self.assertGreater(counts["caught"], 0, counts)

        # Idle, the reader sleeps: a reader that polled on would use a CPU second a second.
        before = cpu_seconds(server.process.pid)
        threading.Event().wait(1.0)
        self.assertLess(cpu_seconds(server.process.pid) - before, 0.5, "an idle server keeps polling")
        self.assertEqual(server.stop(), 0)

    def run_gated(self, server, prediction_id):
        """Starts a prediction that waits at a gate; returns (thread, result holder, gate)."""
        gate = os.path.join(server.tmp, prediction_id)
        result = {}

        def predict():
            result["answer"] = server.request("POST", "/predictions",
                                              {"id": prediction_id, "input": {"s": "x", "gate": gate}})
        thread = threading.Thread(target=predict)
        thread.start()
        wait_until(lambda: os.path.exists(gate + ".inside"), what="the prediction inside predict()")
        # The reader polls for the Done meanwhile: the server, otherwise idle, uses CPU.
        before = cpu_seconds(server.process.pid)
        wait_until(lambda: cpu_seconds(server.process.pid) - before >= 0.2, timeout=5,
                   what="the server's reader to poll")
        return thread, result, gate

    def test_a_cancel_or_a_killed_runner_while_the_reader_polls_ends_the_prediction(self):
        # Polls of up to 100 s: each fault lands while the reader polls for the Done.
        server = self.start("--busy-poll-us", "100000000", "--cancel-timeout", "5")
        thread, result, _ = self.run_gated(server, "canceled")
        self.assertEqual(server.request("POST", "/predictions/canceled/cancel")[0], 200)
        thread.join(60)
        status, _, body = result["answer"]
        self.assertEqual((status, body["status"]), (200, "canceled"), body)

        runner = runner_pid(server)
        thread, result, _ = self.run_gated(server, "killed")
        os.kill(runner, signal.SIGKILL)
        thread.join(60)
        status, _, body = result["answer"]
        self.assertEqual((status, body["status"]), (200, "failed"), body)
        self.assertIn("killed by signal 9", body["error"])
        wait_until(lambda: not process_alive(runner), what="the killed runner to be gone")
        server.wait_for_status("READY")
        self.assertNotEqual(runner_pid(server), runner)
        status, _, body = server.request("POST", "/predictions", {"input": {"s": "after"}})
        self.assertEqual((status, body["output"]), (200, "after"), body)
        self.assertEqual(server.stop(), 0)

    def assert_off(self, server, because):
        """The server says polling is off `because`, serves, and counts no polls."""
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        self.assertIn("busy polling the runner's socket is off: " + because, server.logs())
        status, _, body = server.request("POST", "/predictions", {"input": {"s": "served"}})
        self.assertEqual((status, body["output"]), (200, "served"), body)
        self.assertIsNone(polls(server))
        self.assertEqual(server.stop(), 0)

    def test_one_usable_cpu_turns_polling_off(self):
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(saved)})  # inherited by the server
        try:
            server = CogServer(files=SILENT)
        finally:
            os.sched_setaffinity(0, saved)
        self.assert_off(server, "1.00 CPUs usable")

    def test_zero_turns_polling_off(self):
        self.assert_off(CogServer(files=SILENT, args=["--busy-poll-us", "0"]), "--busy_poll_us=0")

if __name__ == "__main__":
    unittest.main()
