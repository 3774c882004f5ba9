"""Outbound requests through the real binary: webhooks, downloads and uploads speak
http and https only (also after redirects), never connect where
--outbound-deny-cidrs forbids (by default link-local / cloud metadata addresses),
and a webhook destination that accepts and never answers holds up no other
prediction's webhooks."""

import os
import socket
import subprocess
import tempfile
import threading
import unittest

from http_receiver import Receiver
from server_harness import PREDICTORS, SERVER_BINARY, CogServer, wait_until

POLICY_REFUSAL = "refused to connect to 169.254.169.254: blocked by --outbound-deny-cidrs"


class SilentListener:
    """A TCP server that accepts connections and reads what arrives, and never
    answers: a hung webhook destination, or a target that must stay untouched."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Condition()
        self._connections = []  # dicts: socket, data (bytes so far), closed (the peer went away)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            entry = {"socket": conn, "data": b"", "closed": False}
            with self._lock:
                self._connections.append(entry)
                self._lock.notify_all()
            threading.Thread(target=self._read, args=(entry,), daemon=True).start()

    def _read(self, entry):
        while True:
            try:
                chunk = entry["socket"].recv(65536)
            except OSError:
                chunk = b""
            with self._lock:
                if not chunk:
                    entry["closed"] = True
                else:
                    entry["data"] += chunk
                self._lock.notify_all()
            if not chunk:
                return

    def connections(self):
        with self._lock:
            return [dict(c) for c in self._connections]

    def wait_for_request(self, timeout=60):
        """Waits until a whole request head has arrived on some connection."""
        with self._lock:
            if not self._lock.wait_for(lambda: any(b"\r\n\r\n" in c["data"] for c in self._connections),
                                       timeout):
                raise AssertionError("no request reached the listener on port %d" % self.port)

    def close(self):
        self._sock.close()
        with self._lock:
            for c in self._connections:
                try:
                    c["socket"].close()
                except OSError:
                    pass


class WebhookUrlTest(unittest.TestCase):
    """What a caller may name as a webhook, and what the server then connects to."""

    @classmethod
    def setUpClass(cls):
        cls.target = SilentListener()  # what a gopher:// or dict:// webhook would write to
        cls.server = CogServer("echo", args=["--runner-shutdown-grace-period", "1"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.target.close()

    def test_a_webhook_that_is_no_http_url_is_refused_at_submission(self):
        for url, kind in [("gopher://127.0.0.1:%d/_SET%%20key%%20value" % self.target.port, "url_scheme"),
                          ("dict://127.0.0.1:%d/info" % self.target.port, "url_scheme"),
                          ("file:///etc/passwd", "url_scheme"),
                          ("telnet://127.0.0.1:%d" % self.target.port, "url_scheme"),
                          ("not a url", "url_parsing")]:
            with self.subTest(url=url):
                status, _, body = self.server.request(
                    "POST", "/predictions", {"input": {"s": "x"}, "webhook": url},
                    headers={"Prefer": "respond-async"})
                self.assertEqual(status, 422, body)
                self.assertEqual(body["detail"][0]["loc"], ["body", "webhook"])
                self.assertEqual(body["detail"][0]["type"], kind)
                self.assertEqual(body["detail"][0]["input"], url)
        self.assertEqual(self.target.connections(), [], "nothing connected to the target")

    def test_a_webhook_to_the_metadata_address_is_refused_by_the_policy(self):
        status, _, body = self.server.request(
            "POST", "/predictions",
            {"input": {"s": "x"}, "webhook": "http://169.254.169.254/latest/meta-data/",
             "webhook_events_filter": ["completed"]})
        self.assertEqual((status, body["status"]), (200, "succeeded"), "the prediction is unaffected")
        wait_until(lambda: POLICY_REFUSAL in self.server.logs(),
                   what="the refusal in the server log:\n" + self.server.logs())
        # Refused, not timed out, and not retried: the policy will not change.
        self.assertEqual(self.server.logs().count(POLICY_REFUSAL), 1, self.server.logs())
        self.assertNotIn("timed out", self.server.logs())


class DownloadTest(unittest.TestCase):
    """Path inputs fetched under the default policy."""

    @classmethod
    def setUpClass(cls):
        cls.target = SilentListener()
        cls.files = Receiver()
        cls.files.files["/ok.txt"] = b"fine"
        cls.files.redirects["/to-gopher"] = "gopher://127.0.0.1:%d/_x" % cls.target.port
        cls.files.redirects["/to-dict"] = "dict://127.0.0.1:%d/info" % cls.target.port
        cls.files.redirects["/to-file"] = "file:///etc/passwd"
        cls.files.redirects["/to-metadata"] = "http://169.254.169.254/latest/meta-data/"
        cls.server = CogServer("path_input")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.files.close()
        cls.target.close()

    def predict(self, url):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"image": url}})
        self.assertEqual(status, 200, body)
        return body

    def test_a_redirect_to_another_scheme_fails_the_prediction_and_goes_nowhere(self):
        for path in ["/to-gopher", "/to-dict", "/to-file"]:
            with self.subTest(path=path):
                body = self.predict(self.files.url + path)
                self.assertEqual(body["status"], "failed")
                self.assertIn("could not download %s%s" % (self.files.url, path), body["error"])
                self.assertIn("not supported", body["error"].lower())
                self.assertIsNone(body["output"])
        self.assertEqual(self.target.connections(), [], "the redirect targets were never touched")
        self.assertEqual(self.predict(self.files.url + "/ok.txt")["status"], "succeeded")

    def test_the_metadata_address_is_refused_by_the_policy(self):
        for url in ["http://169.254.169.254/latest/meta-data/iam",
                    "http://[::ffff:169.254.169.254]/latest/meta-data/iam",
                    self.files.url + "/to-metadata"]:
            with self.subTest(url=url):
                body = self.predict(url)
                self.assertEqual(body["status"], "failed")
                self.assertIn("could not download %s: " % url, body["error"])
                self.assertIn("blocked by --outbound-deny-cidrs", body["error"])
                self.assertIn("169.254.169.254", body["error"])
        self.assertEqual(self.server.health()["status"], "READY")


class DenyLoopbackTest(unittest.TestCase):
    """--outbound-deny-cidrs=127.0.0.0/8 keeps every transfer off the local host."""

    @classmethod
    def setUpClass(cls):
        cls.files = Receiver()
        cls.files.files["/ok.txt"] = b"fine"
        cls.server = CogServer("path_input", args=["--outbound-deny-cidrs=127.0.0.0/8"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.files.close()

    def test_a_download_from_a_denied_address_fails_with_the_policy_message(self):
        status, _, body = self.server.request("POST", "/predictions",
                                              {"input": {"image": self.files.url + "/ok.txt"}})
        self.assertEqual((status, body["status"]), (200, "failed"), body)
        self.assertIn("could not download %s/ok.txt: refused to connect to 127.0.0.1: "
                      "blocked by --outbound-deny-cidrs" % self.files.url, body["error"])
        self.assertEqual(self.files.received("/ok.txt"), [], "the server never asked")


class PolicyFlagTest(unittest.TestCase):
    def test_a_malformed_deny_list_stops_the_server_with_a_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run(
                [SERVER_BINARY, "--working-directory", os.path.join(PREDICTORS, "echo"),
                 "--port", "0", "--grpc-port", "-1", "--outbound-deny-cidrs=169.254.0.0/16,10.0.0.0/33"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                env=dict(os.environ, TMPDIR=tmp))
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn(b"--outbound-deny-cidrs: '10.0.0.0/33'", result.stdout)


class WebhookIsolationTest(unittest.TestCase):
    """Destinations that accept and never answer hold only their own predictions'
    webhooks."""

    @classmethod
    def setUpClass(cls):
        cls.hung = [SilentListener() for _ in range(4)]
        cls.receiver = Receiver()
        cls.server = CogServer("echo", args=["--runner-shutdown-grace-period", "1"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.receiver.close()
        for listener in cls.hung:
            listener.close()

    def test_hung_destinations_do_not_delay_another_predictions_webhooks(self):
        for i, listener in enumerate(self.hung):
            def started():
                # One slot: the next starts once the previous one has ended
                # (its webhooks still pending is what the test is about).
                status, _, body = self.server.request(
                    "POST", "/predictions",
                    {"id": "hung-%d" % i, "input": {"s": "x"},
                     "webhook": "http://127.0.0.1:%d/hook" % listener.port},
                    headers={"Prefer": "respond-async"})
                self.assertIn(status, (202, 409), body)
                return status == 202
            wait_until(started, what="prediction hung-%d to be accepted" % i)
        for listener in self.hung:
            listener.wait_for_request()  # each holds a webhook it will never answer

        status, _, body = self.server.request(
            "POST", "/predictions",
            {"id": "good", "input": {"s": "hello"}, "webhook": self.receiver.url + "/good"},
            headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, body)
        self.receiver.wait_for(lambda: any(b["status"] == "succeeded" for b in self.receiver.bodies("/good")),
                               what="the good prediction's completed webhook")
        bodies = self.receiver.bodies("/good")
        self.assertEqual([b["status"] for b in bodies], ["processing", "succeeded"])
        self.assertEqual(bodies[-1]["output"], "hello")
        # ... while every hung destination still holds its first webhook,
        # unanswered, on a connection the server has not given up.
        for listener in self.hung:
            connections = listener.connections()
            self.assertEqual(len(connections), 1, "one webhook at a time per prediction")
            self.assertFalse(connections[0]["closed"], "the hung webhook is still waiting")
            self.assertIn(b'"status":"processing"', connections[0]["data"])


if __name__ == "__main__":
    unittest.main()
