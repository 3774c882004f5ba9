"""Every predictor form answers a real prediction through the real server."""

import base64
import json
import os
import shutil
import tempfile
import threading
import unittest

from server_harness import CogServer, wait_until


def run(predictor, body, path="/predictions", args=(), env=None):
    server = CogServer(predictor, args=args, env=env)
    try:
        server.wait_for_status("READY")
        status, _, answer = server.request("POST", path, body)
        return status, answer, server
    finally:
        server.stop()


class FormsTest(unittest.TestCase):
    def test_plain_function(self):
        status, body, _ = run("forms_function", {"input": {"text": "hi"}})
        self.assertEqual((status, body["output"]), (200, "HI"))

    def test_async_setup_and_predict(self):
        status, body, _ = run("forms_async", {"input": {"n": 2}})
        self.assertEqual((status, body["output"], body["logs"]), (200, 6, "async predict\n"))

    def test_async_generator(self):
        status, body, _ = run("forms_async_gen", {"input": {"n": 3}})
        self.assertEqual((status, body["output"]), (200, ["item0", "item1", "item2"]))

    def test_async_generators_running_at_once_each_get_their_own_items_in_order(self):
        # Sync requests: the runner holds each one's short str items and sends
        # them several to a frame; the predictions' items interleave.
        server = CogServer("async_gen_many")
        try:
            server.wait_for_status("READY")
            answers = {}

            def predict(tag):
                answers[tag] = server.request("POST", "/predictions", {"input": {"tag": tag, "n": 2000}})

            threads = [threading.Thread(target=predict, args=("p%d" % i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for tag, (status, _, body) in sorted(answers.items()):
                self.assertEqual(status, 200, body)
                self.assertEqual(body["output"],
                                 ["%s-%d" % (tag, i) for i in range(2000)] + ['%s é ✓ 😀 "end"\n' % tag])
        finally:
            server.stop()

    def test_concatenate_iterator_from_a_module_in_a_subdirectory(self):
        status, body, _ = run("forms_concat", {"input": {}})
        self.assertEqual((status, body["output"]), (200, ["a ", "b ", "c "]))

    def test_objects_secrets_and_dataclass_inputs(self):
        status, body, _ = run("forms_objects", {"input": {"boxes": [{"w": 2, "h": 3}], "api_key": "sekrit"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["output"], {"sizes": [{"area": 6, "label": "2x3"}], "key_length": 6,
                                          "shown_key": "**********", "tags": {}, "note": None})
        self.assertEqual(body["input"]["api_key"], "**********", "a secret is never echoed")

    def test_metrics_and_context(self):
        status, body, _ = run("forms_metrics", {"input": {"n": 3}, "context": {"user": "ada"}})
        self.assertEqual((status, body["output"]), (200, "ada"))
        self.assertEqual(body["metrics"]["tokens"], 3)
        self.assertEqual(body["metrics"]["steps"], ["s", "s", "s"])
        self.assertEqual(body["metrics"]["temperature"], 0.5)
        self.assertIn("predict_time", body["metrics"])

    def test_training(self):
        server = CogServer("forms_train")
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/trainings", {"input": {"steps": 5}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], {"steps": 5, "rate": 0.1})
            self.assertEqual(body["logs"], "training 5 steps\n")
            status, _, body = server.request("POST", "/trainings", {"input": {"steps": 0}})
            self.assertEqual(status, 422)
            self.assertEqual(body["detail"][0]["loc"], ["body", "input", "steps"])
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "x"}})
            self.assertEqual((status, body["output"]), (200, "predicted x"))
            _, _, index = server.request("GET", "/")
            self.assertEqual(index["trainings_url"], "/trainings")
            _, _, schema = server.request("GET", "/openapi.json")
            self.assertIn("/trainings", schema["paths"])
            self.assertEqual(schema["components"]["schemas"]["TrainingInput"]["properties"]["steps"]["minimum"], 1.0)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_training_routes_do_not_act_on_a_prediction_of_the_same_id(self):
        gate = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, gate, True)
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\ntrain: "predict.py:train"\n',
            "predict.py": "import os, time\nfrom cog import BasePredictor\n"
                          "class Predictor(BasePredictor):\n"
                          "    def predict(self, gate: str) -> str:\n"
                          "        while not os.path.exists(gate):\n            time.sleep(0.01)\n"
                          "        return 'done'\n"
                          "def train(n: int) -> int:\n    return n\n"})
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        opened = os.path.join(gate, "open")
        status, _, _ = server.request("PUT", "/predictions/abc", {"input": {"gate": opened}},
                                      headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202)
        status, _, body = server.request("PUT", "/trainings/abc", {"input": {"n": 1}})
        self.assertEqual(status, 409, body)
        self.assertIn("'abc' is the id of a running prediction", json.dumps(body))
        self.assertEqual(server.request("POST", "/trainings/abc/cancel")[0], 404)
        status, _, body = server.request("GET", "/trainings/nothing-here")
        self.assertEqual((status, body["detail"]),
                         (404, "no training with id 'nothing-here' is running or ended recently on this server"))
        self.assertEqual(server.request("GET", "/predictions/abc")[2]["status"], "processing", "not canceled")
        open(opened, "w").close()
        wait_until(lambda: server.request("GET", "/predictions/abc")[2]["status"] == "succeeded",
                   what="the prediction to end as it would have")

    def test_list_constraints_hold_for_each_element_and_optional_elements_take_null(self):
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\n',
            "predict.py": "from typing import List, Optional\nfrom cog import BasePredictor, Input\n"
                          "class Predictor(BasePredictor):\n"
                          "    def predict(self, lo: List[Optional[int]] = Input(default=[1], ge=0),\n"
                          "                grid: List[List[str]] = Input(default=[], regex='^[a-z]+$')) -> str:\n"
                          "        return repr((lo, grid))\n"})
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        status, _, body = server.request("POST", "/predictions", {"input": {"lo": [None, 3], "grid": [["ab"]]}})
        self.assertEqual((status, body.get("output")), (200, "([None, 3], [['ab']])"), body)
        status, _, body = server.request("POST", "/predictions", {"input": {"lo": [-1], "grid": [["ab", "C"]]}})
        self.assertEqual(status, 422, body)
        self.assertEqual([(e["type"], e["loc"]) for e in body["detail"]],
                         [("greater_than_equal", ["body", "input", "lo", 0]),
                          ("string_pattern_mismatch", ["body", "input", "grid", 0, 1])])

    def test_appended_metric_values_are_bounded_like_outputs(self):
        # Kept until the prediction ends: 300 k appends of 1 KB took the server to 668 MB.
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\n',
            "predict.py": "from cog import BasePredictor, current_scope\n"
                          "class Predictor(BasePredictor):\n"
                          "    def predict(self, n: int) -> str:\n"
                          "        for i in range(n):\n"
                          "            current_scope().record_metric('xs', 'v' * 98, mode='append')\n"
                          "        current_scope().record_metric('done', 1)\n"
                          "        return 'ok'\n"},
            args=["--max-output-bytes", "50000"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        status, _, body = server.request("POST", "/predictions", {"input": {"n": 2000}})
        self.assertEqual((status, body["status"], body["output"]), (200, "succeeded", "ok"), body)
        kept = len(body["metrics"]["xs"])
        self.assertEqual(kept, 50000 // (100 + 16))
        self.assertEqual(body["metrics"]["done"], 1, "other metrics still come")
        self.assertIn("[cog-server: values appended to metric 'xs' past --max-output-bytes (50000 bytes of "
                      "appended values) are dropped]", body["logs"])
        status, _, body = server.request("POST", "/predictions", {"input": {"n": 10}})
        self.assertEqual(len(body["metrics"]["xs"]), 10, "per prediction")

    def test_weights_from_the_model_directory_and_from_cog_weights(self):
        status, body, _ = run("forms_weights", {"input": {}})
        self.assertEqual((status, body["output"]), (200, "weights from ./weights"))

    def test_mutable_defaults_do_not_leak_between_predictions(self):
        server = CogServer("forms_mutable")
        try:
            server.wait_for_status("READY")
            for _ in range(3):
                status, _, body = server.request("POST", "/predictions", {"input": {}})
                self.assertEqual((status, body["output"]), (200, "2 1"))
        finally:
            server.stop()


class FileOutputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("file_output")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_path_outputs_become_data_uris_with_a_sniffed_type(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"text": "hello", "mode": "two"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["output"], ["data:text/plain;base64," + base64.b64encode(b"hello 0").decode(),
                                          "data:text/plain;base64," + base64.b64encode(b"hello 1").decode()])

    def test_a_large_binary_file(self):
        status, _, body = self.server.request("POST", "/predictions",
                                              {"input": {"text": "x", "size": 1 << 20}})
        self.assertEqual(status, 200, body["error"])
        prefix = "data:application/octet-stream;base64,"
        self.assertTrue(body["output"][0].startswith(prefix), body["output"][0][:60])
        expected = bytes((i * 7919 + 13) % 251 for i in range(256)) * 4096
        self.assertEqual(base64.b64decode(body["output"][0][len(prefix):]), expected)

    def test_an_output_file_that_does_not_exist_fails_the_prediction_with_its_name(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"text": "x", "mode": "missing"}})
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "failed")
        self.assertIn("never-written.txt", body["error"])
        status, _, body = self.server.request("POST", "/predictions", {"input": {"text": "ok"}})
        self.assertEqual((status, body["status"]), (200, "succeeded"))


if __name__ == "__main__":
    unittest.main()
