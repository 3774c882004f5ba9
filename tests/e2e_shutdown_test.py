"""Shutdown through the real binary: SIGTERM and POST /shutdown drain running
predictions (or cancel them past the grace period), send their terminal
webhooks, leave no child process or temporary file, and exit 0;
--await-explicit-shutdown ignores SIGTERM; a sync client that disconnects
cancels its prediction."""

import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from http_receiver import Receiver
from server_harness import CogServer, process_alive, wait_until


def every_quarter_second(step):
    """Calls step() every 0.25 s on a thread of its own (a client reading or
    writing slowly) until it returns False or its socket fails; the thread."""
    def run():
        try:
            while step():
                time.sleep(0.25)
        except OSError:
            return
    thread = threading.Thread(target=run)
    thread.start()
    return thread


class ShutdownTest(unittest.TestCase):
    def setUp(self):
        self.receiver = Receiver()
        self.gates = tempfile.mkdtemp(prefix="cog-gates-")
        self.gate = os.path.join(self.gates, "open")

    def tearDown(self):
        self.receiver.close()
        shutil.rmtree(self.gates, ignore_errors=True)

    def start_async(self, server, prediction_id, **extra):
        body = {"id": prediction_id, "input": {"gate": self.gate}, "webhook": self.receiver.url + "/hook"}
        body.update(extra)
        status, _, answer = server.request("POST", "/predictions", body, headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, answer)
        self.receiver.wait_for(lambda: self.receiver.bodies("/hook"), what="the start webhook")

    def completed(self):
        self.receiver.wait_for(lambda: any(b["status"] in ("succeeded", "failed", "canceled")
                                           for b in self.receiver.bodies("/hook")), what="the completed webhook")
        return self.receiver.bodies("/hook")[-1]

    def test_sigterm_lets_the_running_prediction_finish_and_refuses_new_ones(self):
        server = CogServer("gate", args=["--runner-shutdown-grace-period", "60"])
        server.wait_for_status("READY")
        runners = server.runner_pids()
        self.start_async(server, "drain-1")
        server.process.send_signal(signal.SIGTERM)

        def refused():
            status, _, body = server.request("POST", "/predictions", {"input": {"gate": self.gate}})
            return (status, body) if status == 503 else None
        status, body = wait_until(refused, what="new predictions to be refused")
        self.assertIn("shutting down", body["detail"])
        status, _, _ = server.request("GET", "/v2/health/ready")
        self.assertEqual(status, 503)
        self.assertEqual(server.health()["status"], "BUSY", "the running prediction still holds its slot")

        open(self.gate, "w").close()  # let the running prediction finish
        self.assertEqual(server.process.wait(60), 0)
        self.assertEqual(server.stop(), 0)
        final = self.completed()
        self.assertEqual((final["id"], final["status"], final["output"]), ("drain-1", "succeeded", "done"))
        self.assertEqual([pid for pid in runners if process_alive(pid)], [], "no runner is left")
        self.assertEqual(server.left_in_tmpdir, [], "no temporary file is left")

    def test_post_shutdown_cancels_what_outlives_the_grace_period(self):
        server = CogServer("gate", args=["--runner-shutdown-grace-period", "0.5"])
        server.wait_for_status("READY")
        runners = server.runner_pids()
        self.start_async(server, "drain-2")
        status, _, body = server.request("POST", "/shutdown")
        self.assertEqual((status, body), (200, {}))
        self.assertEqual(server.process.wait(60), 0)
        self.assertEqual(server.stop(), 0)
        final = self.completed()
        self.assertEqual((final["id"], final["status"]), ("drain-2", "canceled"))
        self.assertEqual([pid for pid in runners if process_alive(pid)], [])
        self.assertEqual(server.left_in_tmpdir, [])

    def test_a_download_in_flight_is_canceled_and_its_file_removed(self):
        self.receiver.files["/big.bin"] = b"z" * 200000
        release = self.receiver.stalls["/big.bin"] = threading.Event()
        server = CogServer("path_input", args=["--runner-shutdown-grace-period", "0.5"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request(
                "POST", "/predictions",
                {"id": "dl", "input": {"image": self.receiver.url + "/big.bin"}, "webhook": self.receiver.url + "/hook"},
                headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            self.receiver.wait_for(lambda: self.receiver.received("/big.bin"), what="the download to start")
            self.assertTrue(any(e.startswith("cog-server-") and e.count("/") >= 2 for e in server.temp_entries()),
                            "half a file is on disk: %s" % server.temp_entries())
            self.assertEqual(server.stop(signal.SIGTERM), 0)
        finally:
            release.set()
        self.assertEqual(self.completed()["status"], "canceled")
        self.assertEqual(server.left_in_tmpdir, [])

    def test_a_log_reader_that_goes_away_does_not_end_the_server(self):
        # The reader of the server's stdout (a log collector) dies: the next
        # line the server wrote killed it with SIGPIPE, skipping the drain.
        read_end, write_end = os.pipe()
        server = CogServer("echo", stdout=write_end)
        self.addCleanup(server.close)
        os.close(write_end)
        server.wait_for_status("READY")
        os.close(read_end)
        status, _, body = server.request("POST", "/predictions", {"input": {"s": "still here"}})
        self.assertEqual((status, body["output"]), (200, "still here"))
        self.assertEqual(server.stop(signal.SIGTERM), 0, "drained and ended as usual")

    def test_a_client_reading_a_large_answer_slowly_does_not_hold_the_shutdown(self):
        # 16 KB/s, above --min-body-rate: a 20 MiB answer would take 20
        # minutes, and held the shutdown until the watchdog (exit code 1).
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\n',
            "predict.py": "from cog import BasePredictor\n"
                          "class Predictor(BasePredictor):\n"
                          "    def predict(self) -> str:\n        return 'x' * (20 << 20)\n"},
            args=["--runner-shutdown-grace-period", "1"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", server.http_port))
        client.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 2\r\n\r\n{}")
        read = []

        def read_some():
            chunk = client.recv(4096)
            read.append(len(chunk))
            return bool(chunk)
        self.addCleanup(every_quarter_second(read_some).join)
        self.addCleanup(client.close)
        wait_until(lambda: sum(read) > 64 << 10, what="the answer to be on its way")
        server.process.send_signal(signal.SIGTERM)
        self.assertEqual(server.process.wait(60), 0)
        self.assertIn("requests still being served 3s after the gateway began to stop", server.logs())
        self.assertLess(sum(read), 20 << 20, "it was cut, not sent whole")

    def test_a_client_sending_a_large_body_slowly_does_not_hold_the_shutdown(self):
        # 10 MB at 8 KB/s, above --min-body-rate: 20 minutes.
        server = CogServer("echo", args=["--runner-shutdown-grace-period", "1"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        client = socket.socket()
        self.addCleanup(client.close)
        client.connect(("127.0.0.1", server.http_port))
        client.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 10000000\r\n\r\n{\"input\": {\"s\": \"")
        stop = threading.Event()

        def send_some():
            client.sendall(b"x" * 2048)
            return not stop.is_set()
        self.addCleanup(every_quarter_second(send_some).join)
        self.addCleanup(stop.set)
        # The head and the body's first bytes went out above: the request is
        # being read whatever the trickle has sent by now.
        server.process.send_signal(signal.SIGTERM)
        self.assertEqual(server.process.wait(60), 0)
        self.assertIn("requests still being served 3s after the gateway began to stop", server.logs())

    def test_sighup_drains_like_sigterm(self):
        server = CogServer("echo")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        server.process.send_signal(signal.SIGHUP)
        self.assertEqual(server.process.wait(30), 0)
        self.assertIn("received Hangup, shutting down", server.logs())

    def test_await_explicit_shutdown_ignores_sigterm(self):
        server = CogServer("gate", args=["--await-explicit-shutdown"])
        server.wait_for_status("READY")
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "ignoring SIGTERM" in server.logs(), what="the server to see SIGTERM")
        open(self.gate, "w").close()
        status, _, body = server.request("POST", "/predictions", {"input": {"gate": self.gate}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), "still serving")
        self.assertIsNone(server.process.poll())
        status, _, _ = server.request("POST", "/shutdown")
        self.assertEqual(status, 200)
        self.assertEqual(server.process.wait(60), 0)
        server.close()


class DisconnectTest(unittest.TestCase):
    def test_a_sync_client_that_disconnects_cancels_its_prediction(self):
        receiver = Receiver()
        gates = tempfile.mkdtemp(prefix="cog-gates-")
        server = CogServer("gate")
        try:
            server.wait_for_status("READY")
            connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
            connection.request("POST", "/predictions", body=json.dumps(
                {"id": "gone", "input": {"gate": os.path.join(gates, "never")}, "webhook": receiver.url + "/hook"}),
                headers={"Content-Type": "application/json"})
            receiver.wait_for(lambda: receiver.bodies("/hook"), what="the start webhook")
            connection.close()  # the client goes away without reading the answer
            receiver.wait_for(lambda: receiver.bodies("/hook")[-1]["status"] == "canceled",
                              what="the prediction to be canceled")
            server.wait_for_status("READY")
            open(os.path.join(gates, "open"), "w").close()
            status, _, body = server.request("POST", "/predictions",
                                             {"input": {"gate": os.path.join(gates, "open")}})
            self.assertEqual((status, body["status"]), (200, "succeeded"))
        finally:
            server.stop()
            receiver.close()
            shutil.rmtree(gates, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
