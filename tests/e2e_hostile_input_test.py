"""Hostile request bodies against the real cog-server: each gets a clear 4xx
(never a 500, a crash or a wedge), and the server is READY for the next one."""
import hashlib
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import CogServer  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
from cogapi.v1 import predictor_pb2, predictor_pb2_grpc  # noqa: E402

PREDICT = '''
import hashlib
from typing import Any, Optional
from cog import BasePredictor, Input, Secret


class Predictor(BasePredictor):
    def predict(self, s: str, n: int = Input(default=1, le=100), f: float = 0.5,
                key: Optional[Secret] = Input(default=None), anything: Optional[Any] = None,
                lines: int = 0) -> Any:
        for i in range(lines):
            print("line %d" % i)
        if anything is not None:
            return anything
        if key is not None:  # what arrived, without echoing the secret
            return "%d|%s" % (len(s), hashlib.sha256(key.get_secret_value().encode()).hexdigest())
        return "%s|%d" % (s, n)
'''

# No Secret in the schema: the input shown in responses and the runner's are
# one value, and a large string goes to the runner without a copy (writev).
PLAIN_PREDICT = '''
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str, t: str = "", n: int = 1) -> str:
        return "%d|%d|%s|%s" % (len(s), n, s[-3:], t)
'''

FILES = {"cog.yaml": 'predict: "predict.py:Predictor"\n', "predict.py": PREDICT}
SECRET = "sk-this-must-never-come-back-0123456789"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class HostileInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer(files=FILES, args=["--max-log-bytes", "20000"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def tearDown(self):
        # Whatever the request did, the server serves the next one.
        self.assertEqual(self.server.process.poll(), None, self.server.logs()[-3000:])
        self.assertEqual(self.server.wait_for_status("READY", timeout=30)["status"], "READY")
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": "ok"}})
        self.assertEqual((status, body["output"]), (200, "ok|1"))

    def post_raw(self, raw: bytes, path: str = "/predictions", method: str = "POST"):
        return self.server.request(method, path, raw=raw, headers={"Content-Type": "application/json"})

    def assert_json_invalid(self, status, body, says: str):
        self.assertEqual(status, 422, body)
        self.assertEqual(body["detail"][0]["type"], "json_invalid", body)
        self.assertIn(says, body["detail"][0]["ctx"]["error"])

    # ---- nesting ----

    def test_100k_deep_nesting_anywhere_is_a_422_naming_the_limit(self):
        deep = nested(100_000)
        for raw in ('{"input": {"anything": %s}}' % deep, '{"input": {"s": "x"}, "id": %s}' % deep,
                    '{"input": {"s": "x"}, "unknown": %s}' % deep, deep,
                    '{"input": {"anything": %s1%s}}' % ('{"a":' * 50_000, "}" * 50_000)):
            status, _, body = self.post_raw(raw.encode())
            self.assert_json_invalid(status, body, "--max-json-depth")

    def test_nesting_within_the_limit_reaches_the_predictor_and_comes_back(self):
        value = json.loads(nested(100))
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": "", "anything": value}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        self.assertEqual(body["output"], value)

    def test_the_depth_limit_is_a_flag(self):
        server = CogServer(files=FILES, args=["--max-json-depth", "8"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", body={"input": {"s": "", "anything": [[[[[[[[1]]]]]]]]}})
            self.assertEqual(status, 422, body)
            self.assertIn("deeper than 8", body["detail"][0]["ctx"]["error"])
            status, _, body = server.request("POST", "/predictions", body={"input": {"s": "", "anything": [[1]]}})
            self.assertEqual((status, body["output"]), (200, [[1]]))
        finally:
            server.close()

    # ---- ids ----

    def test_request_fields_of_a_wrong_type_are_422_not_ignored(self):
        # A webhook given as a number meant no webhooks, and no error.
        cases = [
            ({"webhook": 5}, "url_type", ["body", "webhook"]),
            ({"webhook_events_filter": "completed"}, "list_type", ["body", "webhook_events_filter"]),
            ({"output_file_prefix": 5}, "string_type", ["body", "output_file_prefix"]),
            ({"created_at": "yesterday"}, "datetime_parsing", ["body", "created_at"]),
            ({"created_at": [1]}, "datetime_type", ["body", "created_at"]),
            ({"created_at": "20000-01-01T00:00:00Z"}, "datetime_parsing", ["body", "created_at"]),
            ({"created_at": -1e14}, "datetime_parsing", ["body", "created_at"]),
            ({"context": ["a"]}, "dict_type", ["body", "context"]),
            ({"context": {"a": 1}}, "string_type", ["body", "context", "a"]),
        ]
        for fields, kind, loc in cases:
            status, _, body = self.server.request("POST", "/predictions", body=dict({"input": {"s": "x"}}, **fields))
            self.assertEqual(status, 422, (fields, body))
            self.assertEqual([(e["type"], e["loc"]) for e in body["detail"]], [(kind, loc)], fields)
        # null is "not given", as before; a number is Unix seconds, as pydantic takes it.
        status, _, body = self.server.request("POST", "/predictions", body={
            "input": {"s": "x"}, "webhook": None, "context": None, "created_at": 1700000000})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["created_at"], "2023-11-14T22:13:20+00:00")
        status, _, body = self.server.request("POST", "/predictions", body={  # JavaScript's Date.now()
            "input": {"s": "x"}, "created_at": 1700000000123})
        self.assertEqual((status, body["created_at"]), (200, "2023-11-14T22:13:20.123000+00:00"))

    def test_an_id_that_is_not_utf8_is_a_422(self):
        status, _, body = self.server.request("PUT", "/predictions/%ff", body={"input": {"s": "x"}})
        self.assertEqual(status, 422, body)
        self.assertEqual(body["detail"][0]["loc"], ["body", "id"])
        self.assertEqual(body["detail"][0]["type"], "string_unicode")

    def test_ids_with_control_characters_or_too_long_are_422(self):
        for bad_id, kind in (("a\r\nX-Injected: 1", "string_pattern_mismatch"), ("a\x00b", "string_pattern_mismatch"),
                             ("x" * 129, "string_too_long")):
            status, _, body = self.server.request("POST", "/predictions", body={"id": bad_id, "input": {"s": "x"}})
            self.assertEqual(status, 422, (bad_id, body))
            self.assertEqual(body["detail"][0]["type"], kind)
            self.assertEqual(body["detail"][0]["loc"], ["body", "id"])
        status, _, body = self.server.request("PUT", "/predictions/a%0d%0aX-Injected:%201", body={"input": {"s": "x"}})
        self.assertEqual(status, 422, body)

    def test_a_printable_unicode_id_is_fine(self):
        status, _, body = self.server.request("PUT", "/predictions/%C3%A9t%C3%A9-1", body={"input": {"s": "x"}})
        self.assertEqual((status, body["id"]), (200, "\u00e9t\u00e9-1"), body)

    # ---- numbers ----

    def test_1e30_for_an_int_with_le_100_is_refused_not_wrapped(self):
        status, _, body = self.post_raw(b'{"input": {"s": "", "n": 1e30}}')
        self.assertEqual(status, 422, body)
        self.assertNotEqual(body["detail"][0]["type"], "json_invalid", body)
        self.assertEqual(body["detail"][0]["loc"], ["body", "input", "n"])

    def test_integers_outside_64_bits_and_1e400_are_422_not_500(self):
        for raw in (b'{"input": {"n": 1e400}}', b'{"input": {"f": -1e400}}'):
            status, _, body = self.post_raw(raw)
            self.assertEqual(status, 422, (raw, body))
            self.assertIn("out of range", json.dumps(body), raw)
        # Valid JSON (Python's json takes it): read as a double, too large for an int input.
        status, _, body = self.post_raw(b'{"input": {"s": "x", "n": 123456789012345678901234567890}}')
        self.assertEqual(status, 422, body)
        self.assertEqual([(e["type"], e["loc"]) for e in body["detail"]],
                         [("int_parsing_size", ["body", "input", "n"])])

    # ---- bytes ----

    def test_invalid_utf8_anywhere_in_a_body_is_a_422(self):
        for raw in (b'{"input": {"s": "\xff\xfe"}}', b'{"input": {"s": "x"}, "\xc3": 1}', b'{"input": {"s": "\xed\xa0\x80"}}'):
            status, _, body = self.post_raw(raw)
            self.assert_json_invalid(status, body, "UTF-8")

    def test_a_lone_surrogate_escape_is_a_422_naming_it(self):
        status, _, body = self.post_raw(b'{"input": {"s": "a \\ud83d\\ude00 pair, then a lone \\udc80"}}')
        self.assert_json_invalid(status, body, "JSON string holds a lone surrogate (\\udc80), which is not valid Unicode")

    def test_malformed_json_says_where(self):
        status, _, body = self.post_raw(b'{"input": }')
        self.assertEqual(status, 422, body)
        self.assertEqual(body["detail"][0]["loc"], ["body", 10])

    # ---- secrets ----

    def test_a_422_never_echoes_a_secret(self):
        # A missing/wrong field makes pydantic echo the whole input: the secret must be masked.
        for input_ in ({"key": SECRET, "n": "not a number"}, {"s": "", "key": SECRET, "n": 1000},
                       {"s": "", "key": SECRET, "anything": 1, "f": "x"}, {"s": 1, "key": SECRET}):
            status, _, body = self.server.request("POST", "/predictions", body={"input": input_})
            self.assertEqual(status, 422, body)
            self.assertNotIn(SECRET, json.dumps(body))
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": "", "key": SECRET}})
        self.assertEqual(status, 200, body)
        self.assertNotIn(SECRET, json.dumps(body))
        self.assertEqual(body["input"]["key"], "**********")

    # ---- large strings (carried raw between server and runner) ----

    def test_large_strings_arrive_exactly_both_ways(self):
        s = "quote \" backslash \\ newline \n tab \t caf\u00e9 \u65e5\u672c \U0001f600 \x01 \u2028 " * 20_000
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": s, "n": 7}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:300])
        self.assertEqual(body["input"]["s"], s)
        self.assertEqual(body["output"], s + "|7")

    def test_a_large_string_next_to_other_inputs_keeps_them(self):
        s = "x" * 200_000
        status, _, body = self.server.request(
            "POST", "/predictions", body={"input": {"s": "short", "n": 2, "anything": {"big": s, "list": [s[:70_000]]}}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:300])
        self.assertEqual(body["output"], {"big": s, "list": [s[:70_000]]})

    def test_two_large_string_inputs_both_arrive(self):
        # The largest travels raw, the other inside the JSON.
        status, _, body = self.server.request(
            "POST", "/predictions", body={"input": {"s": "x\n" * 50_000, "anything": "y\u00e9" * 100_000}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:300])
        self.assertEqual(body["output"], "y\u00e9" * 100_000)
        self.assertEqual(body["input"]["s"], "x\n" * 50_000)

    def test_a_large_string_next_to_a_secret_reaches_the_runner_with_the_secret_in_clear(self):
        s = "z\u00e9\n" * 100_000
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": s, "key": SECRET}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:300])
        self.assertEqual(body["output"], "%d|%s" % (len(s), hashlib.sha256(SECRET.encode()).hexdigest()))
        self.assertEqual(body["input"]["key"], "**********")
        self.assertEqual(body["input"]["s"], s)
        self.assertNotIn(SECRET, json.dumps(body))

    def test_large_strings_without_a_secret_in_the_schema_arrive_exactly(self):
        server = CogServer(files={"cog.yaml": 'predict: "predict.py:Predictor"\n', "predict.py": PLAIN_PREDICT})
        try:
            server.wait_for_status("READY")
            prose = "quote \" backslash \\ newline \n caf\u00e9 \U0001f600 \x01 end" * 30_000
            for input_, output in (
                    ({"s": prose, "n": 4}, "%d|4|end|" % len(prose)),
                    # Two large ones: the larger travels raw, the other in the JSON.
                    ({"t": "y" * 70_000, "s": prose}, "%d|1|end|%s" % (len(prose), "y" * 70_000)),
                    ({"s": "short", "t": "q" * 200_000}, "5|1|ort|" + "q" * 200_000)):
                status, _, body = server.request("POST", "/predictions", body={"input": input_})
                self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:300])
                self.assertEqual(body["output"], output)
                self.assertEqual(body["input"], {"t": "", "n": 1, **input_})
        finally:
            server.stop()

    # ---- logs ----

    def test_logs_over_the_limit_keep_the_newest_lines_and_say_so(self):
        status, _, body = self.server.request("POST", "/predictions", body={"input": {"s": "", "lines": 20_000}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), str(body)[:500])
        logs = body["logs"]
        self.assertLessEqual(len(logs), 20_000 + 200)
        self.assertTrue(logs.startswith("[cog-server: "), logs[:200])
        self.assertIn("--max-log-bytes", logs.splitlines()[0])
        self.assertTrue(logs.endswith("line 19999\n"), logs[-100:])

    # ---- transport ----

    def test_a_client_that_sends_half_a_body_and_leaves_costs_nothing(self):
        with socket.create_connection(("127.0.0.1", self.server.http_port), timeout=10) as sock:
            sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000000\r\n\r\n" + b'{"input": {"s": "' + b"a" * 1000)


class HostileGrpcInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer(files=FILES)
        cls.server.wait_for_status("READY")
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % cls.server.grpc_port)
        cls.stub = predictor_pb2_grpc.PredictorStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.close()

    def tearDown(self):
        prediction = self.stub.Predict(predictor_pb2.PredictionRequest(input=self.struct(s="ok")), timeout=30)
        self.assertEqual(prediction.output.string_value, "ok|1")

    @staticmethod
    def struct(**fields):
        value = struct_pb2.Struct()
        value.update(fields)
        return value

    def invalid(self, request):
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.Predict(request, timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, raised.exception.details())
        return raised.exception.details()

    def test_1e30_and_non_finite_numbers_for_an_int_are_invalid_argument(self):
        for value in (1e30, -1e30, float("inf"), float("nan")):
            details = self.invalid(predictor_pb2.PredictionRequest(input=self.struct(s="", n=value)))
            self.assertIn('"n"', details)

    def test_non_finite_numbers_anywhere_are_invalid_argument(self):
        details = self.invalid(predictor_pb2.PredictionRequest(input=self.struct(s="", anything={"a": [1, float("nan")]})))
        self.assertIn("finite", details)

    def test_bad_ids_are_invalid_argument(self):
        for bad_id in ("a\r\nb", "x" * 129):
            details = self.invalid(predictor_pb2.PredictionRequest(id=bad_id, input=self.struct(s="x")))
            self.assertIn("id", details)

    def test_a_secret_is_not_in_the_error(self):
        details = self.invalid(predictor_pb2.PredictionRequest(input=self.struct(key=SECRET, n=1000)))
        self.assertNotIn(SECRET, details)


if __name__ == "__main__":
    unittest.main()
