"""Health through the real binary: a predictor's own healthcheck() drives
UNHEALTHY (failing, raising, or too slow) and back to READY; under Kubernetes
the readiness file appears once setup succeeds and goes at shutdown."""

import os
import shutil
import signal
import tempfile
import unittest

from server_harness import CogServer, wait_until


class UserHealthcheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("healthcheck", args=["--healthcheck-interval", "0.05",
                                                   "--healthcheck-timeout", "0.5"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.status_is("READY")

    def model_file(self, name):
        return os.path.join(self.server.workdir, name)

    def status_is(self, status):
        return wait_until(lambda: self.server.health() if self.server.health()["status"] == status else None,
                          what="health %s" % status)

    def test_a_failing_healthcheck_makes_the_model_unhealthy_until_it_passes(self):
        with open(self.model_file("sick.tmp"), "w") as f:
            f.write("GPU fell off the bus")
        os.rename(self.model_file("sick.tmp"), self.model_file("sick"))  # whole, at once
        try:
            health = self.status_is("UNHEALTHY")
            self.assertIn("GPU fell off the bus", health["user_healthcheck_error"])
            self.assertEqual(self.server.request("GET", "/v2/health/ready")[0], 503)
            self.assertEqual(self.server.request("GET", "/v2/health/live")[0], 200)
        finally:
            os.remove(self.model_file("sick"))
        health = self.status_is("READY")
        self.assertNotIn("user_healthcheck_error", health)
        self.assertEqual(self.server.request("GET", "/v2/health/ready")[0], 200)

    def test_a_healthcheck_that_does_not_answer_is_unhealthy(self):
        open(self.model_file("hang"), "w").close()
        try:
            health = self.status_is("UNHEALTHY")
            self.assertIn("did not answer within", health["user_healthcheck_error"])
        finally:
            os.remove(self.model_file("hang"))
        self.status_is("READY")
        status, _, body = self.server.request("POST", "/predictions", {"input": {"s": "fine"}})
        self.assertEqual((status, body["output"]), (200, "fine"))


class LoadFailureTest(unittest.TestCase):
    def test_a_model_that_cannot_be_loaded_says_so_everywhere(self):
        server = CogServer(files={"cog.yaml": 'predict: "predict.py:Predictor"\n',
                                  "predict.py": "from cog import BasePredictor\nclass Predictor(BasePredictor:\n"})
        self.addCleanup(server.close)
        health = server.wait_for_status("SETUP_FAILED")
        self.assertIn("SyntaxError", health["setup"]["logs"])
        status, _, body = server.request("GET", "/openapi.json")
        self.assertEqual(status, 503)
        self.assertEqual(body["detail"],
                         "The model could not be loaded, so it has no schema; see setup.logs in /health-check")
        status, _, body = server.request("POST", "/predictions", {"input": {}})
        self.assertEqual((status, body["detail"]), (503, "Setup failed; see setup.logs in /health-check"))


class SetupLogsTest(unittest.TestCase):
    def test_setup_logs_keep_the_last_max_log_bytes(self):
        # A setup() that prints 8 MiB: every /health-check would carry it all
        # and the server would keep it for its whole life.
        server = CogServer("log_flood", args=["--max-log-bytes", str(1 << 20)],
                           env={"LOG_FLOOD_SETUP_MB": "8"})
        self.addCleanup(server.close)
        logs = server.wait_for_status("READY")["setup"]["logs"]
        self.assertLessEqual(len(logs), 1 << 20)
        first, rest = logs.split("\n", 1)
        self.assertRegex(first, r"^\[cog-server: \d+ bytes of earlier logs dropped; --max-log-bytes keeps the last 1048576\]$")
        dropped = int(first.split()[1])
        self.assertEqual(dropped + len(rest), 8 << 20, "what was kept and what was dropped make what was printed")
        self.assertEqual(set(rest.splitlines()), {"x" * 1023}, "whole lines only")
        self.assertEqual(server.request("GET", "/v2/health/ready")[0], 200)


class KubernetesReadyFileTest(unittest.TestCase):
    def test_the_ready_file_follows_setup_and_shutdown(self):
        directory = tempfile.mkdtemp(prefix="cog-k8s-")
        ready = os.path.join(directory, "cog", "ready")
        release = os.path.join(directory, "release")
        os.makedirs(os.path.dirname(ready))
        open(ready, "w").close()  # left by a server that was killed (an emptyDir outlives it)
        server = CogServer("slow_setup", args=["--ready-file", ready],
                           env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "COG_TEST_RELEASE": release})
        try:
            server.wait_for_status("STARTING")
            self.assertFalse(os.path.exists(ready), "not before setup succeeded")
            open(release, "w").close()
            server.wait_for_status("READY")
            wait_until(lambda: os.path.exists(ready), what="the ready file")
            # Its runner dies: not ready while the next one sets up, ready again after.
            os.remove(release)
            [child] = server.runner_pids()
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: not os.path.exists(ready), what="the ready file to go while restarting")
            open(release, "w").close()
            server.wait_for_status("READY")
            wait_until(lambda: os.path.exists(ready), what="the ready file back")
            self.assertEqual(server.stop(), 0)
            self.assertFalse(os.path.exists(ready), "removed at shutdown")
        finally:
            server.close()
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
