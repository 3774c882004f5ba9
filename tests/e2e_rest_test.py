"""The Cog HTTP API of the real cog-server, driven with http.client."""

import os
import re
import signal
import unittest

from server_harness import CogServer, _runfile, process_alive, wait_until

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
RESPONSE_KEYS = ["input", "output", "id", "version", "created_at", "started_at", "completed_at",
                 "logs", "error", "status", "metrics"]


class HelloExampleTest(unittest.TestCase):
    """What README.md promises a newcomer."""

    def test_the_bundled_example_greets(self):
        server = CogServer("hello", source_dir=_runfile("examples/hello"))
        try:
            server.wait_for_status("READY")
            status, headers, body = server.request("POST", "/predictions", {"input": {"text": "world"}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], "hello world")
            self.assertEqual(body["status"], "succeeded")
        finally:
            self.assertEqual(server.stop(), 0)


class RestApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("types")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_sync_prediction_has_every_key_in_cog_order(self):
        status, headers, body = self.server.request("POST", "/predictions", {"input": {"s": "hi"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(list(body.keys()), RESPONSE_KEYS)
        self.assertEqual(body["output"], "hi|2|0.5|False")
        self.assertEqual(body["input"], {"s": "hi", "i": 2, "f": 0.5, "b": False})
        self.assertEqual(body["status"], "succeeded")
        self.assertIsNone(body["error"])
        self.assertRegex(body["id"], r"^[a-z0-9]{26}$")
        self.assertRegex(body["started_at"], TIMESTAMP)
        self.assertRegex(body["completed_at"], TIMESTAMP)
        self.assertIsNone(body["created_at"])
        self.assertIsInstance(body["metrics"]["predict_time"], float)
        self.assertEqual(body["logs"], "types: str int float bool\n")

    def test_given_id_and_created_at_are_echoed(self):
        status, _, body = self.server.request(
            "POST", "/predictions",
            {"id": "req-1", "input": {"s": "x"}, "created_at": "2024-01-01T00:00:00Z", "context": {"a": "b"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["id"], "req-1")
        self.assertEqual(body["created_at"], "2024-01-01T00:00:00+00:00")  # as Python isoformat()

    def test_inputs_are_coerced_as_legacy_cog_does(self):
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"s": "x", "i": "7", "f": 3, "b": "true"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["output"], "x|7|3.0|True")

    def test_unknown_input_is_dropped_with_a_warning_in_the_logs(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"s": "x", "extra": 1}})
        self.assertEqual(status, 200, body)
        self.assertNotIn("extra", body["input"])
        self.assertIn("extra", body["logs"])

    def test_missing_required_input_is_422_in_the_legacy_shape(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {}})
        self.assertEqual(status, 422)
        self.assertEqual(body, {"detail": [{"type": "missing", "loc": ["body", "input", "s"],
                                            "msg": "Field required", "input": {}}]})

    def test_missing_input_and_null_input_mean_empty(self):
        for body in ({}, {"input": None}):
            status, _, answer = self.server.request("POST", "/predictions", body)
            self.assertEqual(status, 422, answer)
            self.assertEqual(answer["detail"][0]["loc"], ["body", "input", "s"])

    def test_wrong_types_and_ranges_list_every_problem(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"s": 5, "i": 11}})
        self.assertEqual(status, 422)
        self.assertEqual([e["type"] for e in body["detail"]], ["string_type", "less_than_equal"])
        self.assertEqual(body["detail"][1]["ctx"], {"le": 10})

    def test_malformed_json_is_422(self):
        status, _, body = self.server.request("POST", "/predictions", raw=b'{"input":',
                                              headers={"Content-Type": "application/json"})
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"][0]["type"], "json_invalid")
        self.assertEqual(body["detail"][0]["loc"][0], "body")

    def test_other_content_types_are_415(self):
        status, _, body = self.server.request("POST", "/predictions", raw=b'{"input":{"s":"hi"}}',
                                              headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        self.assertIn("application/json", body["detail"])

    def test_content_type_with_parameters_is_json(self):
        status, _, body = self.server.request("POST", "/predictions", raw=b'{"input":{"s":"hi"}}',
                                              headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(status, 200, body)

    def test_index(self):
        status, _, body = self.server.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(body["predictions_url"], "/predictions")
        self.assertEqual(body["healthcheck_url"], "/health-check")
        self.assertEqual(body["predictions_cancel_url"], "/predictions/{prediction_id}/cancel")

    def test_openapi_describes_the_inputs(self):
        status, _, body = self.server.request("GET", "/openapi.json")
        self.assertEqual(status, 200)
        inputs = body["components"]["schemas"]["Input"]
        self.assertEqual(inputs["required"], ["s"])
        self.assertEqual(inputs["properties"]["i"],
                         {"type": "integer", "title": "I", "x-order": 1, "minimum": 0.0, "maximum": 10.0,
                          "default": 2})
        self.assertEqual(body["components"]["schemas"]["Output"], {"type": "string", "title": "Output"})

    def test_unknown_route_and_wrong_method(self):
        status, _, body = self.server.request("GET", "/nope")
        self.assertEqual((status, body), (404, {"detail": "Not Found"}))
        status, headers, body = self.server.request("GET", "/predictions")
        self.assertEqual((status, body), (405, {"detail": "Method Not Allowed"}))
        self.assertEqual(headers["allow"], "POST")

    def test_cancel_of_unknown_prediction_is_404(self):
        status, _, body = self.server.request("POST", "/predictions/unknown-id/cancel")
        self.assertEqual((status, body), (404, {}))

    def test_put_with_mismatched_id_is_422(self):
        status, _, body = self.server.request("PUT", "/predictions/put-1", {"id": "other", "input": {"s": "x"}})
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"][0]["msg"], "prediction ID must match the ID supplied in the URL")

    def test_put_runs_with_the_path_id(self):
        status, _, body = self.server.request("PUT", "/predictions/put-2", {"input": {"s": "x"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["id"], "put-2")

    def test_kubernetes_probes_when_ready(self):
        self.assertEqual(self.server.request("GET", "/v2/health/live")[:3:2], (200, {"live": True, "status": "READY"}))
        self.assertEqual(self.server.request("GET", "/v2/health/ready")[:3:2], (200, {"ready": True, "status": "READY"}))

    def test_metrics_count_predictions_in_prometheus_text(self):
        def count(text, status):
            line = 'cog_predictions_total{kind="predict",status="%s"} ' % status
            return int(next(l for l in text.splitlines() if l.startswith(line))[len(line):])
        status, headers, before = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(self.server.request("POST", "/predictions", {"input": {"s": "m"}})[0], 200)
        _, _, after = self.server.request("GET", "/metrics")
        self.assertEqual(count(after, "succeeded"), count(before, "succeeded") + 1)
        self.assertIn('cog_health_status{status="READY"} 1', after)
        self.assertIn("# TYPE cog_prediction_duration_seconds histogram", after)

    def test_health_reports_concurrency_and_versions(self):
        health = self.server.health()
        self.assertEqual(health["status"], "READY")
        self.assertEqual(health["concurrency"], {"max": 1, "current": 0})
        self.assertEqual(health["setup"]["status"], "succeeded")
        self.assertIn("python", health["version"])


class BodyLimitTest(unittest.TestCase):
    def test_a_body_over_the_limit_is_413_and_the_server_keeps_serving(self):
        server = CogServer("echo", args=["--max-body-bytes", "1000"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x" * 2000}})
            self.assertEqual(status, 413)
            self.assertIn("larger than 1000 bytes", body["detail"])
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x" * 500}})
            self.assertEqual((status, body["output"]), (200, "x" * 500))
        finally:
            self.assertEqual(server.stop(), 0)


class PredictorFailureTest(unittest.TestCase):
    def test_a_raising_predictor_fails_the_prediction_and_keeps_serving(self):
        server = CogServer("raise")
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x"}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["status"], "failed")
            self.assertEqual(body["error"], "boom: x")
            self.assertIn("about to fail\n", body["logs"])
            self.assertIn("ValueError: boom: x", body["logs"])
            self.assertIsNone(body["output"])
            self.assertEqual(server.health()["status"], "READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "ok"}})
            self.assertEqual((status, body["output"]), (200, "fine"))
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_runner_that_dies_fails_the_prediction_and_the_server_stays_up(self):
        # Never restarted, as legacy Cog (restarts: e2e_fault_test).
        server = CogServer("exits", args=["--runner-restart-limit", "0"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x"}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["status"], "failed")
            self.assertIn("exited with code 3", body["error"])
            health = server.wait_for_status("DEFUNCT")
            self.assertEqual(health["setup"]["status"], "succeeded")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x"}})
            self.assertEqual(status, 503)
            self.assertIn("defunct", body["detail"])
            self.assertEqual(server.request("GET", "/")[0], 200)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_iterator_outputs_and_logs_from_stdout_and_stderr(self):
        server = CogServer("logs_gen")
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"n": 3}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], ["chunk0", "chunk1", "chunk2"])
            for i in range(3):
                self.assertIn("log line %d\n" % i, body["logs"])
                self.assertIn("stderr line %d\n" % i, body["logs"])
            # Many items, between log lines: a sync request's items reach the
            # server several at once (Predict.batch_outputs), all and in order.
            status, _, body = server.request("POST", "/predictions", {"input": {"n": 50}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], ["chunk%d" % i for i in range(50)])
            self.assertEqual(body["logs"].count("log line "), 50)
        finally:
            server.stop()

    def test_a_generator_without_logs_gives_every_item_in_order(self):
        server = CogServer("gated_gen")
        try:
            server.wait_for_status("READY")
            gate = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "gate-%d" % os.getpid())
            open(gate, "w").close()
            self.addCleanup(os.unlink, gate)
            for first in (7, 8, 9, 300):  # under, at and past the runner's batch of 8
                status, _, body = server.request("POST", "/predictions", {"input": {"gate": gate, "first": first}})
                self.assertEqual(status, 200, body)
                self.assertEqual(body["output"], ["item%d" % i for i in range(first)] + ["last"])
        finally:
            server.stop()


class SetupTest(unittest.TestCase):
    def test_health_goes_from_starting_to_ready_with_setup_logs(self):
        release = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "release-%d" % os.getpid())
        server = CogServer("slow_setup", env={"COG_TEST_RELEASE": release})
        try:
            health = server.wait_for_status("STARTING")
            self.assertEqual(health["status"], "STARTING")
            self.assertEqual(server.request("GET", "/v2/health/live")[0], 200)
            self.assertEqual(server.request("GET", "/v2/health/ready")[0], 503)
            wait_until(lambda: "setup starting" in server.health()["setup"].get("logs", ""),
                       what="setup's first line in setup.logs")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "hi"}})
            self.assertEqual(status, 503, body)
            self.assertIn("Setup has not finished", body["detail"])
            open(release, "w").close()
            health = server.wait_for_status("READY")
            self.assertEqual(health["setup"]["status"], "succeeded")
            self.assertEqual(health["setup"]["logs"], "setup starting\nsetup done\n")
            self.assertRegex(health["setup"]["started_at"], TIMESTAMP)
            self.assertRegex(health["setup"]["completed_at"], TIMESTAMP)
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "hi"}})
            self.assertEqual((status, body["output"]), (200, "hi"))
        finally:
            server.stop()
            if os.path.exists(release):
                os.remove(release)

    def test_setup_failure_is_reported_and_the_server_keeps_answering(self):
        server = CogServer("setup_fail")
        try:
            health = server.wait_for_status("SETUP_FAILED")
            self.assertEqual(health["setup"]["status"], "failed")
            logs = health["setup"]["logs"]
            self.assertIn("setting up\n", logs)
            self.assertIn("Traceback (most recent call last)", logs)
            self.assertIn("RuntimeError: setup boom", logs)
            self.assertEqual(server.request("GET", "/")[0], 200)
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "hi"}})
            self.assertEqual(status, 503)
            self.assertIn("Setup failed", body["detail"])
            self.assertEqual(server.request("GET", "/v2/health/live")[0], 503, "an orchestrator should restart it")
            self.assertEqual(server.request("GET", "/v2/health/ready")[0], 503)
            self.assertEqual(server.health()["status"], "SETUP_FAILED")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_predictor_that_cannot_load_is_a_setup_failure_with_the_reason(self):
        server = CogServer(files={"cog.yaml": 'predict: "predict.py:Predictor"\n',
                                  "predict.py": "import no_such_module_anywhere\n"})
        try:
            health = server.wait_for_status("SETUP_FAILED")
            self.assertIn("No module named 'no_such_module_anywhere'", health["setup"]["logs"])
            self.assertEqual(server.request("GET", "/openapi.json")[0], 503)
        finally:
            server.stop()


class ShutdownTest(unittest.TestCase):
    def test_post_shutdown_exits_zero_and_leaves_no_runner_behind(self):
        server = CogServer("echo")
        server.wait_for_status("READY")
        runners = server.runner_pids()
        self.assertEqual(len(runners), 1, "one runner child")
        status, _, body = server.request("POST", "/shutdown")
        self.assertEqual((status, body), (200, {}))
        self.assertEqual(server.process.wait(30), 0)
        left = server.temp_entries()
        log = server.logs()
        server.close()
        for pid in runners:
            self.assertFalse(process_alive(pid), "runner %d survived" % pid)
        self.assertRegex(log, r"cog-runner-\d+-\w+/runner.sock")  # where the runner connected
        self.assertEqual(left, [], "the socket's directory and the files' root are removed")

    def test_sigterm_exits_zero(self):
        server = CogServer("echo")
        server.wait_for_status("READY")
        self.assertEqual(server.stop(signal.SIGTERM), 0)


if __name__ == "__main__":
    unittest.main()
