"""Webhooks from the real cog-server to a real local HTTP server."""

import re
import socket
import unittest

from http_receiver import Receiver
from server_harness import CogServer


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver()
        cls.server = CogServer("logs_gen", args=["--runner-shutdown-grace-period", "1"],
                               env={"WEBHOOK_AUTH_TOKEN": "tok3n",
                                    "COG_THROTTLE_RESPONSE_INTERVAL": "0.2"})
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.receiver.close()

    def predict(self, hook, body, headers=None):
        body = dict(body, webhook=self.receiver.url + hook)
        status, _, answer = self.server.request("POST", "/predictions", body,
                                                headers=dict({"Prefer": "respond-async"}, **(headers or {})))
        self.assertEqual(status, 202, answer)
        return answer

    def wait_completed(self, hook):
        self.receiver.wait_for(lambda: any(b["status"] != "processing" for b in self.receiver.bodies(hook)),
                               what="the completed webhook on " + hook)
        return self.receiver.bodies(hook)

    def test_all_events_in_order_with_the_full_prediction(self):
        self.predict("/all", {"id": "w-1", "input": {"n": 3}},
                     headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        bodies = self.wait_completed("/all")
        self.assertEqual(bodies[0]["status"], "processing")
        self.assertEqual(bodies[-1]["status"], "succeeded")
        self.assertEqual(bodies[-1]["output"], ["chunk0", "chunk1", "chunk2"])
        self.assertEqual(bodies[-1]["id"], "w-1")
        self.assertEqual(list(bodies[-1].keys())[:3], ["input", "output", "id"])
        # Output only grows and every webhook comes after the one before it.
        lengths = [len(b["output"] or []) for b in bodies]
        self.assertEqual(lengths, sorted(lengths))
        request = self.receiver.received("/all")[0]
        self.assertEqual(request["headers"]["content-type"], "application/json")
        self.assertEqual(request["headers"]["authorization"], "Bearer tok3n")
        self.assertTrue(request["headers"]["user-agent"].startswith("cog-server/"))
        self.assertEqual(request["headers"]["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

    def test_filter_completed_only(self):
        self.predict("/completed", {"input": {"n": 2}, "webhook_events_filter": ["completed"]})
        bodies = self.wait_completed("/completed")
        self.assertEqual([b["status"] for b in bodies], ["succeeded"])

    def test_filter_start_and_output(self):
        self.predict("/start-output", {"input": {"n": 2}, "webhook_events_filter": ["start", "output"]})
        self.receiver.wait_for(lambda: len(self.receiver.bodies("/start-output")) == 3, what="start + 2 outputs")
        bodies = self.receiver.bodies("/start-output")
        self.assertEqual([len(b["output"] or []) for b in bodies], [0, 1, 2])
        self.assertTrue(all(b["status"] == "processing" for b in bodies))

    def test_unknown_event_in_the_filter_is_422(self):
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"n": 1}, "webhook": self.receiver.url + "/x",
                                     "webhook_events_filter": ["bogus"]}, headers={"Prefer": "respond-async"})
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"][0]["loc"], ["body", "webhook_events_filter", 0])

    def test_logs_are_coalesced_but_the_last_state_arrives(self):
        self.predict("/logs", {"input": {"n": 40}, "webhook_events_filter": ["logs", "completed"]})
        bodies = self.wait_completed("/logs")
        # 80 log lines in a burst: far fewer than 80 logs webhooks, and the
        # final one has every line.
        self.assertLess(len(bodies), 20)
        self.assertEqual(bodies[-1]["logs"].count("\n"), 80)

    def test_the_terminal_webhook_is_retried_until_accepted(self):
        self.receiver.failures["/flaky"] = [503, 500, 429]
        self.predict("/flaky", {"input": {"n": 1}, "webhook_events_filter": ["completed"]})
        bodies = self.wait_completed("/flaky")
        self.assertEqual([b["status"] for b in bodies], ["succeeded"])
        self.assertEqual([r["status"] for r in self.receiver.received("/flaky")], [503, 500, 429, 200])

    def test_a_password_in_the_webhook_url_is_not_logged(self):
        self.receiver.failures["/with-password"] = [500]
        url = self.receiver.url.replace("://", "://hook-user:s3cret-pw@") + "/with-password"
        status, _, answer = self.server.request(
            "POST", "/predictions", {"input": {"n": 1}, "webhook": url, "webhook_events_filter": ["completed"]},
            headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, answer)
        self.wait_completed("/with-password")
        [failed, _] = self.receiver.received("/with-password")
        self.assertEqual(failed["status"], 500)
        logs = self.server.logs()
        self.assertIn("webhook %s for prediction %s answered 500" % (
            url.replace("s3cret-pw", "***"), answer["id"]), logs)
        self.assertNotIn("s3cret-pw", logs)

    def test_a_non_terminal_webhook_is_not_retried_and_does_not_hold_up_the_rest(self):
        self.receiver.failures["/start-fails"] = [500]
        self.predict("/start-fails", {"input": {"n": 1}, "webhook_events_filter": ["start", "completed"]})
        self.wait_completed("/start-fails")
        self.assertEqual([r["status"] for r in self.receiver.received("/start-fails")], [500, 200])

    def test_an_unreachable_webhook_does_not_affect_the_prediction(self):
        status, _, body = self.server.request("POST", "/predictions",
                                              {"input": {"n": 1}, "webhook": "http://127.0.0.1:9/nothing-here"})
        self.assertEqual((status, body["status"]), (200, "succeeded"))


class WebhookBacklogTest(unittest.TestCase):
    def test_webhooks_past_the_backlog_are_dropped_and_counted(self):
        # A receiver that accepts and never answers holds each webhook sent
        # to it; past --webhook-backlog-bytes new ones are dropped, the log
        # says so and GET /metrics counts them, and predictions go on.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        self.addCleanup(silent.close)
        server = CogServer("echo", args=["--webhook-backlog-bytes", "3000"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        hook = "http://127.0.0.1:%d/hook" % silent.getsockname()[1]
        for i in range(3):
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x" * 2000}, "webhook": hook})
            self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        _, _, metrics = server.request("GET", "/metrics")
        dropped = int(re.search(r"^cog_webhooks_dropped_total (\d+)$", metrics, re.M).group(1))
        self.assertGreaterEqual(dropped, 5)  # of 6: one ~2 KB body waits, then none fits beside it
        self.assertIn("waiting for receivers that have not taken them (--webhook-backlog-bytes)", server.logs())



if __name__ == "__main__":
    unittest.main()
