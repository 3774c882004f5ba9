"""Runner faults never wedge the real cog-server: the fault matrix.

Each fault (the runner exits, is SIGKILLed from outside, segfaults, closes its
socket and keeps running, ignores a cancel, writes bytes that are no frame)
ends the prediction it hit with a clear answer; the runner is then restarted
and set up again (STARTING, then READY with the new setup's logs), and the
next prediction succeeds. Past --runner-restart-limit the server is DEFUNCT
and says so on /v2/health/live and gRPC liveness. A sidecar runner
(--spawn-runner=false) that dies and is started again is taken back. A SIGTERM
while a prediction ignores its cancel still answers its client.
"""

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import grpc

from grpc_health_v1 import health_pb2, health_pb2_grpc
from server_harness import PREDICTORS, CogServer, _runfile, process_alive, wait_until

RUNNER = _runfile("runner")


class FaultMatrixTest(unittest.TestCase):
    def setUp(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.server = CogServer("faults", args=["--cancel-timeout", "1"])
        self.addCleanup(self.server.close)
        self.addCleanup(self.pool.shutdown)
        health = self.server.wait_for_status("READY")
        self.runner = runner_pid(health)
        self.children = self.server.runner_pids()

    def predict(self, fault, prediction_id=None):
        body = {"input": {"fault": fault}}
        if prediction_id:
            body["id"] = prediction_id
        status, _, answer = self.server.request("POST", "/predictions", body)
        self.assertEqual(status, 200, answer)
        return answer

    def in_background(self, fault, prediction_id):
        return self.pool.submit(self.predict, fault, prediction_id)

    def wait_ready_file(self, fault):
        path = os.path.join(self.server.workdir, fault + ".ready")
        wait_until(lambda: os.path.exists(path), what="the predictor to reach %s" % path)

    def assert_restarted_and_serving(self):
        """The old runner is gone, a new one is set up, and a prediction succeeds."""
        for pid in [self.runner] + self.children:
            wait_until(lambda: not process_alive(pid), what="the old runner's process %d to be gone" % pid)
        health = self.server.wait_for_status("READY")
        self.assertEqual(health["setup"]["status"], "succeeded")
        runner = runner_pid(health)  # the new setup's logs, and only those
        self.assertNotEqual(runner, self.runner)
        self.assertTrue(process_alive(runner))
        answer = self.predict("none")
        self.assertEqual((answer["status"], answer["output"]), ("succeeded", "ok"), answer)
        self.assertEqual(self.server.request("GET", "/v2/health/live")[0], 200)
        self.assertEqual(self.server.stop(), 0)
        self.assertEqual(self.server.left_in_tmpdir, [])

    def test_os_exit(self):
        answer = self.predict("exit")
        self.assertEqual(answer["status"], "failed")
        self.assertEqual(answer["error"], "The runner process exited with code 3")
        self.assert_restarted_and_serving()

    def test_sigkill_from_outside(self):
        future = self.in_background("wait", "killed")
        self.wait_ready_file("wait")
        os.kill(self.runner, signal.SIGKILL)
        answer = future.result(timeout=120)
        self.assertEqual(answer["status"], "failed")
        self.assertEqual(answer["error"], "The runner process was killed by signal 9 (Killed)")
        self.assert_restarted_and_serving()

    def test_segfault(self):
        answer = self.predict("segfault")
        self.assertEqual(answer["status"], "failed")
        self.assertIn("was killed by signal 11", answer["error"])
        self.assert_restarted_and_serving()

    def test_closed_socket_and_still_running_is_killed(self):
        answer = self.predict("close_socket")
        self.assertEqual(answer["status"], "failed")
        # It ignores SIGTERM: only SIGKILL ends it.
        self.assertEqual(answer["error"], "The runner closed its connection; the runner process "
                                          "was killed by signal 9 (Killed)")
        self.assert_restarted_and_serving()

    def test_ignored_cancel_restarts_the_runner(self):
        future = self.in_background("ignore_cancel", "stubborn")
        self.wait_ready_file("ignore_cancel")
        status, _, body = self.server.request("POST", "/predictions/stubborn/cancel")
        self.assertEqual(status, 200, body)
        answer = future.result(timeout=120)
        self.assertEqual(answer["status"], "canceled")
        message = "The prediction did not stop within 1s of being canceled; the runner was restarted"
        self.assertEqual(answer["error"], message)
        self.assertIn("[cog-server] %s\n" % message, answer["logs"])
        self.assertIn("prediction stubborn did not stop within 1s of being canceled", self.server.logs())
        self.assert_restarted_and_serving()

    def test_garbage_on_the_socket(self):
        # A "length" of 3.7 GB: read as a frame, it would swallow the answer.
        answer = self.predict("garbage")
        self.assertEqual(answer["status"], "failed")
        self.assertIn("The runner connection broke: the stream from the runner is out of step",
                      answer["error"])
        self.assertIn("the runner process was killed by signal 9", answer["error"])
        self.assert_restarted_and_serving()

    def test_a_frame_that_is_no_runner_message(self):
        answer = self.predict("garbage_frame")
        self.assertEqual(answer["status"], "failed")
        self.assertIn("out of step: a frame of 8 bytes that is no runner message", answer["error"])
        self.assert_restarted_and_serving()


def runner_pid(health):
    """The pid of the process that ran setup() (the predictor says so in its setup logs)."""
    found = re.fullmatch(r"setup in pid (\d+)\n", health["setup"]["logs"])
    assert found, health
    return int(found.group(1))


class CancelBurstTest(unittest.TestCase):
    def test_clients_repeating_their_cancels_cost_no_runner(self):
        # Six clients cancel each running prediction at once, again and
        # again: each prediction ends canceled, and the runner is the same
        # one at the end. Bursts like these, kept up for 12 s, killed the
        # runner 1-3 times (a second cancel raised while the first unwound;
        # runner_user_code_test's CancelBurstTest replays it exactly); the
        # server now sends one Cancel a prediction, whatever the clients do.
        server = CogServer("sleeper")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        runners = server.runner_pids()
        for n in range(30):
            prediction_id = "burst-%d" % n
            status, _, body = server.request("PUT", "/predictions/" + prediction_id,
                                             {"input": {"seconds": 600, "spin": n % 2 == 1}},
                                             headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            wait_until(lambda: "sleeping" in (server.request("GET", "/predictions/" + prediction_id)[2]["logs"]
                                              or ""), what="the prediction to run")

            def cancel_often():
                for _ in range(5):
                    server.request("POST", "/predictions/%s/cancel" % prediction_id)

            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                for future in [pool.submit(cancel_often) for _ in range(6)]:
                    future.result()
            final = wait_until(lambda: (lambda b: b if b["status"] not in ("starting", "processing") else None)(
                server.request("GET", "/predictions/" + prediction_id)[2]), what="the prediction to end")
            self.assertEqual(final["status"], "canceled", final.get("error"))
        self.assertEqual(server.health()["status"], "READY")
        self.assertEqual(server.runner_pids(), runners, "the runner was replaced")


class RestartLimitTest(unittest.TestCase):
    def test_past_the_limit_the_server_is_defunct_and_not_live(self):
        server = CogServer("faults", args=["--runner-restart-limit", "2"])
        self.addCleanup(server.close)
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        self.addCleanup(channel.close)
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(2):
            server.wait_for_status("READY")
            answer = server.request("POST", "/predictions", {"input": {"fault": "exit"}})[2]
            self.assertEqual(answer["error"], "The runner process exited with code 3")
        server.wait_for_status("READY")
        answer = server.request("POST", "/predictions", {"input": {"fault": "exit"}})[2]
        self.assertEqual(answer["error"], "The runner process exited with code 3")
        wait_until(lambda: server.request("GET", "/health-check")[2]["status"] == "DEFUNCT",
                   what="DEFUNCT")
        status, _, body = server.request("GET", "/v2/health/live")
        self.assertEqual((status, body), (503, {"live": False, "status": "DEFUNCT"}))
        live = health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=10)
        self.assertEqual(live.status, health_pb2.HealthCheckResponse.NOT_SERVING)
        status, _, body = server.request("POST", "/predictions", {"input": {"fault": "none"}})
        self.assertEqual(status, 503, body)
        self.assertEqual(server.runner_pids(), [], "no runner is started again")
        self.assertIn("--runner-restart-limit=2", server.logs())
        self.assertEqual(server.stop(), 0)

    def test_restarts_for_ignored_cancels_do_not_count_toward_the_limit(self):
        # A model that ignores its cancels made the pod DEFUNCT after
        # --runner-restart-limit cancels: replacing the pod would not help.
        server = CogServer("faults", args=["--runner-restart-limit", "1", "--cancel-timeout", "1"])
        self.addCleanup(server.close)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        self.addCleanup(pool.shutdown)
        ready = os.path.join(server.workdir, "ignore_cancel.ready")
        for i in range(3):
            server.wait_for_status("READY")
            if os.path.exists(ready):
                os.unlink(ready)
            future = pool.submit(server.request, "POST", "/predictions",
                                 {"id": "stubborn-%d" % i, "input": {"fault": "ignore_cancel"}})
            wait_until(lambda: os.path.exists(ready), what="the predictor to ignore its cancel")
            self.assertEqual(server.request("POST", "/predictions/stubborn-%d/cancel" % i)[0], 200)
            answer = future.result(timeout=60)[2]
            self.assertEqual(answer["status"], "canceled")
            self.assertIn("the runner was restarted", answer["error"])
        self.assertEqual(server.wait_for_status("READY")["status"], "READY")
        self.assertEqual(server.logs().count("not counted toward --runner-restart-limit"), 3)
        # Backed off from the second on, so that such a model does not re-run its setup back to back.
        self.assertIn("restarting the runner in 500ms (a restart the server asked for, 2 within 5m", server.logs())
        self.assertIn("restarting the runner in 1s (a restart the server asked for, 3 within 5m", server.logs())
        # A fault of the runner still counts: the limit of 1 allows one restart, then DEFUNCT.
        answer = server.request("POST", "/predictions", {"input": {"fault": "exit"}})[2]
        self.assertEqual(answer["error"], "The runner process exited with code 3")
        server.wait_for_status("READY")
        server.request("POST", "/predictions", {"input": {"fault": "exit"}})
        wait_until(lambda: server.request("GET", "/health-check")[2]["status"] == "DEFUNCT", what="DEFUNCT")
        self.assertEqual(server.stop(), 0)

    def test_a_restarted_runner_that_dies_in_setup_is_one_more_restart(self):
        # An OOM kill during a restarted runner's setup made the server
        # SETUP_FAILED for good, with restarts still to spare.
        release = os.path.join(tempfile.mkdtemp(), "release")
        self.addCleanup(shutil.rmtree, os.path.dirname(release), True)
        server = CogServer("slow_setup", env={"COG_TEST_RELEASE": release})
        self.addCleanup(server.close)
        open(release, "w").close()
        server.wait_for_status("READY")
        os.remove(release)
        def in_setup(old):
            # A new runner (the killed guardian's own child is adopted by the
            # server for a moment: one child, not the old one), in its setup.
            health = server.health()
            pids = server.runner_pids()
            return (len(pids) == 1 and pids[0] != old and health["status"] == "STARTING" and
                    "setup starting" in (health["setup"].get("logs") or ""))

        for _ in range(2):  # the runner dies, then its successor dies in setup
            [child] = server.runner_pids()
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: in_setup(child), what="a new runner in setup")
        open(release, "w").close()
        server.wait_for_status("READY")
        self.assertEqual(server.request("POST", "/predictions", {"input": {"s": "back"}})[2]["output"], "back")
        self.assertEqual(server.stop(), 0)

    def test_a_setup_failure_is_not_retried(self):
        server = CogServer("setup_fail")
        self.addCleanup(server.close)
        server.wait_for_status("SETUP_FAILED")
        runner = server.runner_pids()
        self.assertEqual(len(runner), 1)
        os.kill(runner[0], signal.SIGKILL)  # the server's child, whatever it runs
        wait_until(lambda: server.runner_pids() == [], what="the runner to be reaped")
        self.assertEqual(server.health()["status"], "SETUP_FAILED")
        self.assertNotIn("restarting the runner", server.logs())
        self.assertEqual(server.stop(), 0)


class SidecarRestartTest(unittest.TestCase):
    def setUp(self):
        self.socket_dir = tempfile.mkdtemp(prefix="cog-sidecar-")
        self.addCleanup(shutil.rmtree, self.socket_dir, True)
        self.path = os.path.join(self.socket_dir, "runner.sock")
        self.server = CogServer("faults", args=["--spawn-runner=false", "--runner-socket", self.path])
        self.addCleanup(self.server.close)

    def start_runner(self):
        """The runner as a sidecar's model container would start it."""
        code = ("import sys; sys.path.insert(0, %r)\nfrom cog_runner.__main__ import main\n"
                "sys.exit(main(sys.argv[1:]))" % RUNNER)
        runner = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, "--socket", self.path, "--working-directory",
             os.path.join(PREDICTORS, "faults"), "--predict", "predict.py:Predictor"])
        self.addCleanup(lambda: (runner.kill(), runner.wait()))
        return runner

    def test_a_new_runner_is_taken_back_after_the_old_one_died(self):
        first = self.start_runner()
        self.server.wait_for_status("READY")
        status, _, answer = self.server.request("POST", "/predictions", {"input": {"fault": "exit"}})
        self.assertEqual((status, answer["status"]), (200, "failed"), answer)
        self.assertEqual(first.wait(60), 3)
        health = wait_until(lambda: self.server.health()["status"] == "STARTING" and self.server.health(),
                            what="STARTING while no runner is connected")
        self.assertEqual(self.server.request("GET", "/v2/health/live")[0], 200, "waiting is alive")

        second = self.start_runner()
        health = self.server.wait_for_status("READY")
        self.assertEqual(health["setup"]["logs"], "setup in pid %d\n" % second.pid)
        status, _, answer = self.server.request("POST", "/predictions", {"input": {"fault": "none"}})
        self.assertEqual((status, answer["status"], answer["output"]), (200, "succeeded", "ok"), answer)

        second.send_signal(signal.SIGKILL)  # killed from outside this time
        second.wait(60)
        wait_until(lambda: self.server.health()["status"] == "STARTING", what="STARTING again")
        third = self.start_runner()
        self.server.wait_for_status("READY")
        status, _, answer = self.server.request("POST", "/predictions", {"input": {"fault": "none"}})
        self.assertEqual((status, answer["output"]), (200, "ok"), answer)
        self.assertEqual(self.server.stop(), 0)
        self.assertEqual(third.wait(60), 0, "told to shut down")


class ShutdownDuringIgnoredCancelTest(unittest.TestCase):
    def test_sigterm_answers_the_client_of_a_prediction_that_ignores_its_cancel(self):
        server = CogServer("faults", args=["--runner-shutdown-grace-period", "1", "--cancel-timeout", "1"])
        self.addCleanup(server.close)
        runner = runner_pid(server.wait_for_status("READY"))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(server.request, "POST", "/predictions",
                                 {"id": "deaf", "input": {"fault": "ignore_cancel"}})
            wait_until(lambda: os.path.exists(os.path.join(server.workdir, "ignore_cancel.ready")),
                       what="the predictor to block SIGIO")
            server.process.send_signal(signal.SIGTERM)
            status, _, answer = future.result(timeout=120)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["status"], "canceled")
        self.assertIn("did not stop", answer["error"])
        self.assertEqual(server.process.wait(120), 0)
        self.assertFalse(process_alive(runner))
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
