"""An async predictor with concurrency.max runs that many predictions at once."""

import os
import threading
import unittest

from server_harness import CogServer, wait_until


class AsyncConcurrencyTest(unittest.TestCase):
    def test_four_at_once_then_busy_then_cancel_one(self):
        server = CogServer("async_sleep")
        gate = os.path.join(server.tmp, "gate")  # removed with the server
        results = {}
        try:
            health = server.wait_for_status("READY")
            self.assertEqual(health["concurrency"], {"max": 4, "current": 0})

            def predict(name):
                results[name] = server.request("POST", "/predictions",
                                               {"id": name, "input": {"name": name, "gate": gate}})
            threads = [threading.Thread(target=predict, args=("p%d" % i,)) for i in range(3)]
            for thread in threads:
                thread.start()
            status, _, body = server.request("POST", "/predictions", {"id": "p3", "input": {"name": "p3", "gate": gate}},
                                             headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            health = server.wait_for_status("BUSY")
            self.assertEqual(health["concurrency"], {"max": 4, "current": 4})
            status, _, body = server.request("POST", "/predictions", {"input": {"name": "p4"}})
            self.assertEqual((status, body), (409, {"detail": "Already running a prediction"}))

            # All four are inside predict() at once; a runner taking them one at a
            # time would never get past the first, which waits for the gate.
            wait_until(lambda: all(os.path.exists("%s.p%d.started" % (gate, i)) for i in range(4)),
                       what="four predictions inside predict() together")
            self.assertEqual(server.request("POST", "/predictions/p3/cancel")[0], 200)
            wait_until(lambda: server.health()["concurrency"]["current"] == 3, what="p3 to be canceled")

            open(gate, "w").close()
            for thread in threads:
                thread.join(30)
            for i in range(3):
                status, _, body = results["p%d" % i]
                self.assertEqual((status, body["output"], body["status"]), (200, "p%d" % i, "succeeded"))
                self.assertEqual(body["logs"], "start p%d\nend p%d\n" % (i, i), "logs stay with their prediction")
            server.wait_for_status("READY")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_cancel_read_with_its_predict_ends_the_prediction(self):
        # An async model that blocks its event loop (time.sleep in async def)
        # while the server sends a Predict and, at once, its Cancel: the runner
        # reads both together and cancels a task that never ran. It must still
        # say the prediction ended; else the server waits --cancel-timeout and
        # replaces the runner, with every prediction in it.
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\nconcurrency:\n  max: 4\n',
            "predict.py": (
                "import asyncio, time\nfrom cog import BasePredictor\n\n"
                "class Predictor(BasePredictor):\n"
                "    async def predict(self, name: str, block: float = 0, started: str = '') -> str:\n"
                "        if started:\n"
                "            open(started, 'w').close()\n"
                "        time.sleep(block)  # the event loop stops here\n"
                "        if not block:\n"
                "            await asyncio.sleep(60)\n"
                "        return name\n")},
            args=["--cancel-timeout", "120"])
        try:
            server.wait_for_status("READY")
            runners = server.runner_pids()
            started = os.path.join(server.tmp, "blocker.started")
            for round in range(2):
                if os.path.exists(started):
                    os.unlink(started)
                blocker, victim = "blocker-%d" % round, "victim-%d" % round
                status, _, _ = server.request(
                    "POST", "/predictions", {"id": blocker, "input": {"name": blocker, "block": 1.5, "started": started}},
                    headers={"Prefer": "respond-async"})
                self.assertEqual(status, 202)
                wait_until(lambda: os.path.exists(started), what="the event loop to be blocked")
                status, _, _ = server.request("POST", "/predictions", {"id": victim, "input": {"name": victim}},
                                              headers={"Prefer": "respond-async"})
                self.assertEqual(status, 202)
                self.assertEqual(server.request("POST", "/predictions/%s/cancel" % victim)[0], 200)

                def ended(pid):
                    status, _, body = server.request("GET", "/predictions/" + pid)
                    return status == 200 and body["status"] in ("succeeded", "failed", "canceled") and body

                self.assertEqual(wait_until(lambda: ended(victim), timeout=20, what="the victim to end")["status"],
                                 "canceled")
                body = wait_until(lambda: ended(blocker), timeout=20, what="the blocker to end")
                self.assertEqual((body["status"], body["output"]), ("succeeded", blocker))
            self.assertEqual(server.runner_pids(), runners, "the runner was replaced")
            server.wait_for_status("READY")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_prediction_ending_in_a_base_exception_fails_alone(self):
        # sys.exit(), KeyboardInterrupt or a BaseException of the model's own
        # in one prediction: it fails, saying so; the others on the event
        # loop finish as they would have, and the runner serves on. (exit and
        # interrupt ended the runner and its siblings came out "canceled";
        # the model's own left its prediction running forever.)
        server = CogServer("async_raisers")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        runners = server.runner_pids()
        for mode, error in (("exit", "the model called sys.exit(3)"), ("interrupt", "KeyboardInterrupt"),
                            ("own", "the model's own BaseException")):
            with self.subTest(mode=mode):
                answers = {}

                def predict(name, body):
                    answers[name] = server.request("POST", "/predictions", {"input": body}, timeout=30)

                threads = [threading.Thread(target=predict, args=("sleeper%d" % i, {"mode": "sleep", "seconds": 0.5}))
                           for i in range(2)]
                threads.append(threading.Thread(target=predict, args=(mode, {"mode": mode, "seconds": 0.1})))
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                status, _, body = answers[mode]
                self.assertEqual((status, body["status"], body["error"]), (200, "failed", error), body)
                for i in range(2):
                    status, _, body = answers["sleeper%d" % i]
                    self.assertEqual((status, body["status"], body["output"]), (200, "succeeded", "slept"), body)
        self.assertEqual(server.runner_pids(), runners, "the runner was replaced")
        self.assertEqual(server.health()["status"], "READY")

    def test_concurrency_with_a_sync_predict_is_refused_with_a_reason(self):
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\nconcurrency:\n  max: 2\n',
            "predict.py": "from cog import BasePredictor\n\nclass Predictor(BasePredictor):\n"
                          "    def predict(self, s: str) -> str:\n        return s\n"})
        try:
            health = server.wait_for_status("SETUP_FAILED")
            self.assertIn("async def predict", health["setup"]["logs"])
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
