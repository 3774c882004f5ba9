"""The gRPC API of the real cog-server, driven with Debian's python3-grpcio."""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import grpc
from google.protobuf import struct_pb2

from cogapi.v1 import predictor_pb2, predictor_pb2_grpc
from grpc_health_v1 import health_pb2, health_pb2_grpc
from server_harness import CogServer, rss_kib, wait_until


def struct(**values):
    s = struct_pb2.Struct()
    s.update(values)
    return s


class ServedTest(unittest.TestCase):
    """One server on `predictor` for the class, READY, with a channel and a stub."""

    predictor = ""

    @classmethod
    def setUpClass(cls):
        cls.server = CogServer(cls.predictor)
        cls.server.wait_for_status("READY")
        cls.channel = grpc.insecure_channel("127.0.0.1:%d" % cls.server.grpc_port)
        cls.stub = predictor_pb2_grpc.PredictorStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()


class GrpcApiTest(ServedTest):
    predictor = "types"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.health = health_pb2_grpc.HealthStub(cls.channel)

    def test_an_invalid_input_quoting_a_long_value_stays_invalid_argument(self):
        # The 422's detail, echoing the value, went out whole as grpc-message:
        # past the client's 8 KiB of metadata it arrived RESOURCE_EXHAUSTED,
        # "busy", which a client retries for ever.
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.Predict(predictor_pb2.PredictionRequest(input=struct(s="hi", i="x" * 50000)), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        details = raised.exception.details()
        self.assertTrue(details.startswith('invalid input: [{"type":"int_parsing'), details[:100])
        self.assertIn('"loc":["body","input","i"]', details)
        self.assertRegex(details, r"\.\.\. \(\d+ bytes more, cut to fit a gRPC status\)$")

    def test_a_created_at_no_timestamp_can_hold_is_invalid_argument(self):
        for seconds, nanos in ((253402300800, 0), (0, -5)):
            request = predictor_pb2.PredictionRequest(input=struct(s="hi"))
            request.created_at.seconds, request.created_at.nanos = seconds, nanos
            with self.assertRaises(grpc.RpcError) as raised:
                self.stub.Predict(request, timeout=30)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("created_at: seconds %d and nanos %d are no valid Timestamp" % (seconds, nanos),
                          raised.exception.details())

    def raw_call(self, method, request_bytes, stream=False):
        """The status of cog.v1.Predictor/`method` called with `request_bytes` as they are."""
        path = "/cog.v1.Predictor/" + method
        call = self.channel.unary_stream(path) if stream else self.channel.unary_unary(path)
        try:
            result = call(request_bytes, timeout=30)
            if stream:
                list(result)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()

    def test_a_request_that_is_not_utf8_is_invalid_argument_naming_the_field(self):
        # gRPC's callback API answered every request it could not read with
        # UNIMPLEMENTED and no message, and protobuf wrote a raw line to
        # stderr for each.
        valid_id = predictor_pb2.PredictionRequest(id="\u00e9t\u00e9", input=struct(s="hi")).SerializeToString()
        bad_id = valid_id.replace("\u00e9".encode(), b"\xff\xfe")
        valid_key = predictor_pb2.PredictionRequest(input=struct(**{"\u00e9": "hi"})).SerializeToString()
        bad_key = valid_key.replace("\u00e9".encode(), b"\xc3")
        for method, stream in (("Predict", False), ("PredictStream", True), ("Train", False)):
            code, details = self.raw_call(method, bad_id, stream)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, method)
            self.assertEqual(details, "The request's field 'cog.v1.PredictionRequest.id' is not valid UTF-8; "
                             "protobuf strings must be (a Struct's keys and string values too)")
        code, details = self.raw_call("Predict", bad_key)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("'google.protobuf.Struct.FieldsEntry.key' is not valid UTF-8", details)
        code, details = self.raw_call("Cancel", predictor_pb2.CancelRequest(id="\u00e9").SerializeToString().replace(b"\xc3\xa9", b"\xc3\xc3"))
        self.assertEqual((code, details), (grpc.StatusCode.INVALID_ARGUMENT,
                                           "The request's field 'cog.v1.CancelRequest.id' is not valid UTF-8; "
                                           "protobuf strings must be (a Struct's keys and string values too)"))
        self.assertEqual(self.raw_call("Predict", valid_id)[0], grpc.StatusCode.OK)
        self.assertNotIn("libprotobuf", self.server.logs())

    def test_a_compressed_request_is_refused_not_inflated(self):
        # gRPC inflates a message whole before its size is checked: ~1 MB of
        # gzip became 1 GB in the server.
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.Predict(predictor_pb2.PredictionRequest(input=struct(s="x" * 1000)), timeout=30,
                              compression=grpc.Compression.Gzip)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED, raised.exception.details())
        self.assertEqual(self.stub.Predict(predictor_pb2.PredictionRequest(input=struct(s="x")),
                                           timeout=30).status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)

    def test_bytes_that_are_no_message_are_invalid_argument(self):
        for method, stream in (("Predict", False), ("PredictStream", True), ("Health", False)):
            code, details = self.raw_call(method, b"\xff\xff\xff\xff", stream)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, method)
            self.assertRegex(details, r"^The request could not be read as a cog\.v1\.\w+: its bytes are not such a "
                                      r"protocol buffer message")
        self.assertEqual(self.raw_call("Health", b"")[0], grpc.StatusCode.OK)
        # A message, then a 0 tag and bytes: protobuf stops at the 0 and says yes.
        valid = predictor_pb2.PredictionRequest(input=struct(s="hi")).SerializeToString()
        code, details = self.raw_call("Predict", valid + b"\x00\xff\xff")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)

    def test_nesting_is_bounded_by_max_json_depth_as_over_rest(self):
        def varint(n):
            out = b""
            while n >= 0x80:
                out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
            return out + bytes([n])

        def field(number, payload):  # a length-delimited field
            return varint(number << 3 | 2) + varint(len(payload)) + payload

        def request(lists):  # input {"deep": [[...[]...]]}, `lists` deep, built by hand: too deep for upb
            value = b""
            for _ in range(lists):
                value = field(6, field(1, value) if value else b"")  # Value.list_value.values
            return field(2, field(1, field(1, b"deep") + field(2, value)))  # input.fields["deep"]

        def rest(lists):
            body = '{"input":{"deep":' + "[" * lists + "]" * lists + "}}"
            return self.server.request("POST", "/predictions", raw=body.encode(),
                                       headers={"Content-Type": "application/json"})

        # A body {"input": {"deep": ...}} is 2 levels, then the lists: 126 of them fit --max-json-depth=128.
        status, _, body = rest(126)
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"][0]["type"], "missing")  # read, then validated: `s` is required
        code, details = self.raw_call("Predict", request(126))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(details.startswith('invalid input: [{"type":"missing"'), details[:100])

        status, _, body = rest(127)
        self.assertEqual((status, body["detail"][0]["type"]), (422, "json_invalid"))
        code, details = self.raw_call("Predict", request(127))
        self.assertEqual((code, details), (grpc.StatusCode.INVALID_ARGUMENT,
                                           'input: nests deeper than --max-json-depth (128) lists and objects, '
                                           'counted from a REST body\'s {"input": ...}'))
        # Far deeper is refused as it is read, before anything walks it.
        code, details = self.raw_call("Predict", request(3000))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("or its input nests deeper than --max-json-depth (128) lists and objects", details)
        self.assertEqual(self.stub.Health(predictor_pb2.HealthRequest(), timeout=10).status,
                         predictor_pb2.HealthResponse.READY)

    def test_predict(self):
        prediction = self.stub.Predict(
            predictor_pb2.PredictionRequest(id="g-1", input=struct(s="hi", i=3)), timeout=30)
        self.assertEqual(prediction.id, "g-1")
        self.assertEqual(prediction.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)
        self.assertEqual(prediction.output.string_value, "hi|3|0.5|False")
        self.assertEqual(prediction.logs, "types: str int float bool\n")
        self.assertGreater(prediction.completed_at.ToDatetime(), prediction.started_at.ToDatetime())
        self.assertIn("predict_time", prediction.metrics.fields)
        self.assertEqual(dict(prediction.input)["i"], 3)

    def test_invalid_input_is_invalid_argument_with_the_details(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.Predict(predictor_pb2.PredictionRequest(input=struct(i=3)), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("Field required", raised.exception.details())
        self.assertIn('"s"', raised.exception.details())

    def test_health(self):
        health = self.stub.Health(predictor_pb2.HealthRequest(), timeout=10)
        self.assertEqual(health.status, predictor_pb2.HealthResponse.READY)
        self.assertEqual(health.setup.status, "succeeded")
        self.assertEqual(health.concurrency_max, 1)
        self.assertIn("server", health.version)

    def test_standard_grpc_health_check(self):
        for service in ("", "liveness", "readiness", "cog.v1.Predictor"):
            response = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING, service)
        watch = self.health.Watch(health_pb2.HealthCheckRequest(service="readiness"), timeout=10)
        self.assertEqual(next(watch).status, health_pb2.HealthCheckResponse.SERVING)
        watch.cancel()

    def test_schema_is_the_openapi_document(self):
        schema = self.stub.GetSchema(predictor_pb2.GetSchemaRequest(), timeout=10)
        document = json.loads(schema.openapi_json)
        self.assertEqual(document["components"]["schemas"]["Input"]["required"], ["s"])
        _, _, rest = self.server.request("GET", "/openapi.json")
        self.assertEqual(document, rest)

    def test_predict_stream_sends_start_logs_and_completed_in_order(self):
        events = list(self.stub.PredictStream(
            predictor_pb2.PredictionRequest(input=struct(s="x")), timeout=30))
        kinds = [event.WhichOneof("event") for event in events]
        self.assertEqual(kinds, ["start", "log", "completed"])
        self.assertEqual(events[0].start.status, predictor_pb2.PREDICTION_STATUS_PROCESSING)
        self.assertEqual(events[1].log.text, "types: str int float bool\n")
        self.assertEqual(events[2].completed.output.string_value, "x|2|0.5|False")

    def test_cancel_of_unknown_id_is_not_found(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.Cancel(predictor_pb2.CancelRequest(id="nope"), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_server_reflection_lists_the_service(self):
        # Reflection is what grpcurl and friends use; ask for the service list.
        from grpc_reflection_stub import list_services
        self.assertIn("cog.v1.Predictor", list_services(self.channel))


class MessageSizeTest(unittest.TestCase):
    def test_requests_are_bounded_by_max_body_bytes_as_over_rest(self):
        # gRPC's own default bound is 4 MiB; REST's is --max-body-bytes.
        server = CogServer("echo", args=["--max-body-bytes", str(8 << 20)])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port,
                                        options=[("grpc.max_receive_message_length", 64 << 20)])
        self.addCleanup(channel.close)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        text = "x" * (6 << 20)
        prediction = stub.Predict(predictor_pb2.PredictionRequest(input=struct(s=text)), timeout=60)
        self.assertEqual(prediction.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED, prediction.error)
        self.assertEqual(len(prediction.output.string_value), len(text))
        with self.assertRaises(grpc.RpcError) as raised:
            stub.Predict(predictor_pb2.PredictionRequest(input=struct(s="y" * (9 << 20))), timeout=60)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(server.health()["status"], "READY")


class SlowStreamTest(unittest.TestCase):
    @unittest.skipIf(os.environ.get("COG_SANITIZER"), "a sanitizer's allocator and shadow memory")
    def test_logs_wait_for_a_client_that_stops_reading_bounded(self):
        # A client that stops reading stalls the stream's writes (HTTP/2 flow
        # control): at most --max-log-bytes (2 MiB here) of logs wait for it,
        # and it is told what was left out (the server grew by all 128 MiB
        # printed, and by 1 GiB for 1 GiB, before).
        server = CogServer("log_flood", args=["--max-log-bytes", str(2 << 20)])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        self.addCleanup(channel.close)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        before = rss_kib(server.process.pid)
        events = stub.PredictStream(predictor_pb2.PredictionRequest(id="flood", input=struct(mb=128)), timeout=120)
        self.assertEqual(next(events).WhichOneof("event"), "start")
        wait_until(lambda: server.request("GET", "/predictions/flood")[2]["status"] == "succeeded",
                   timeout=60, what="the prediction to end")
        grown = rss_kib(server.process.pid) - before
        rest = list(events)
        logs = "".join(event.log.text for event in rest if event.WhichOneof("event") == "log")
        self.assertLess(grown, 48 << 10, "the server grew by %d KiB for a stream's logs" % grown)
        self.assertRegex(logs, r"\[cog-server: \d+ bytes of logs left out of this stream here: its client read "
                         r"them more slowly than they came")
        self.assertLess(len(logs), 16 << 20)
        self.assertEqual(rest[-1].WhichOneof("event"), "completed")
        self.assertEqual(rest[-1].completed.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)
        self.assertEqual(rest[-1].completed.output.string_value, "done")
        # A burst within the bound reaches a client that reads it, whole.
        events = list(stub.PredictStream(predictor_pb2.PredictionRequest(input=struct(mb=1)), timeout=120))
        self.assertEqual(sum(len(e.log.text) for e in events if e.WhichOneof("event") == "log"), 1 << 20)


class StalledStreamTest(unittest.TestCase):
    def test_a_client_that_reads_nothing_has_its_call_canceled(self):
        # A client that stops reading held every event of its prediction for
        # as long as it kept the connection, long after the prediction ended
        # (12 such streams took the server to 740 MB). An event left unread
        # past --header-timeout plus, at --min-body-rate, its size and what
        # HTTP/2's window may hold before it (up to 4 MiB) ends the call: 5 s
        # here at 1 MiB/s.
        server = CogServer("log_flood", args=["--header-timeout", "1", "--min-body-rate", str(1 << 20)])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        self.addCleanup(channel.close)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        events = stub.PredictStream(predictor_pb2.PredictionRequest(id="stalled", input=struct(mb=32)), timeout=120)
        self.assertEqual(next(events).WhichOneof("event"), "start")
        wait_until(lambda: "PredictStream of prediction stalled: the client left" in server.logs(), timeout=60,
                   what="the stalled stream to be noticed")
        with self.assertRaises(grpc.RpcError) as raised:
            for _ in events:
                pass
        self.assertEqual(raised.exception.code(), grpc.StatusCode.CANCELLED)
        wait_until(lambda: server.request("GET", "/predictions/stalled")[2]["status"] in ("succeeded", "canceled"),
                   timeout=60, what="the prediction to end")
        self.assertEqual(server.health()["status"], "READY")

    def test_a_client_that_reads_is_not_held_to_it(self):
        server = CogServer("log_flood")
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        self.addCleanup(channel.close)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        events = list(stub.PredictStream(predictor_pb2.PredictionRequest(input=struct(mb=2)), timeout=120))
        self.assertEqual(events[-1].completed.output.string_value, "done")
        self.assertEqual(sum(len(e.log.text) for e in events if e.WhichOneof("event") == "log"), 2 << 20)


class GrpcGeneratorTest(ServedTest):
    """A generator's items: each one streamed as it is yielded, all of them at
    the end of a unary call (where the runner may send several at once)."""

    predictor = "gated_gen"

    def setUp(self):
        self.gates = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.gates, True)

    def test_predict_stream_gives_each_item_while_the_predictor_runs(self):
        # The predictor waits for this client to have seen two items: held back,
        # they would never come, and the prediction would fail.
        gate = os.path.join(self.gates, "stream")
        events = self.stub.PredictStream(
            predictor_pb2.PredictionRequest(input=struct(gate=gate, first=2)), timeout=60)
        seen = []
        for event in events:
            kind = event.WhichOneof("event")
            self.assertNotEqual(kind, "completed", event)
            if kind == "output":
                seen.append(event.output.value.string_value)
                if len(seen) == 2:
                    break
        open(gate, "w").close()
        rest = list(events)
        self.assertEqual(rest[-1].WhichOneof("event"), "completed")
        completed = rest[-1].completed
        self.assertEqual(completed.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED, completed.error)
        seen += [e.output.value.string_value for e in rest if e.WhichOneof("event") == "output"]
        self.assertEqual(seen, ["item0", "item1", "last"])

    def test_unary_predict_gives_every_item_in_order(self):
        gate = os.path.join(self.gates, "open")
        open(gate, "w").close()
        for first in (3, 8, 20):
            prediction = self.stub.Predict(
                predictor_pb2.PredictionRequest(input=struct(gate=gate, first=first)), timeout=60)
            self.assertEqual(prediction.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED, prediction.error)
            self.assertEqual([v.string_value for v in prediction.output.list_value.values],
                             ["item%d" % i for i in range(first)] + ["last"])


class GrpcCancelTest(unittest.TestCase):
    def test_deadline_cancels_the_prediction_and_frees_the_slot(self):
        server = CogServer("sleeper")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        try:
            server.wait_for_status("READY")
            with self.assertRaises(grpc.RpcError) as raised:
                stub.Predict(predictor_pb2.PredictionRequest(id="slow-1"), timeout=1.0)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            server.wait_for_status("READY", timeout=30)
            prediction = stub.Predict(
                predictor_pb2.PredictionRequest(input=struct(seconds=0)), timeout=30)
            self.assertEqual(prediction.output.string_value, "woke up")
        finally:
            channel.close()
            self.assertEqual(server.stop(), 0)

    def test_rest_cancel_of_an_async_prediction(self):
        server = CogServer("sleeper")
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"id": "a-1", "input": {}},
                                             headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            self.assertEqual(body["status"], "processing")
            self.assertEqual(server.health()["status"], "BUSY")
            status, _, body = server.request("POST", "/predictions", {"input": {}})
            self.assertEqual((status, body), (409, {"detail": "Already running a prediction"}))
            status, _, _ = server.request("POST", "/predictions/a-1/cancel")
            self.assertEqual(status, 200)
            server.wait_for_status("READY", timeout=30)
            self.assertEqual(server.request("POST", "/predictions/a-1/cancel")[0], 404)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_cancel_interrupts_a_busy_python_loop_that_prints(self):
        server = CogServer("sleeper")
        try:
            server.wait_for_status("READY")
            for round in range(3):
                status, _, _ = server.request("POST", "/predictions", {"id": "spin-%d" % round,
                                                                       "input": {"spin": True}},
                                              headers={"Prefer": "respond-async"})
                self.assertEqual(status, 202)
                status, _, _ = server.request("POST", "/predictions/spin-%d/cancel" % round)
                self.assertEqual(status, 200)
                server.wait_for_status("READY", timeout=30)
            # The stream to the runner is intact: a normal prediction still works.
            status, _, body = server.request("POST", "/predictions", {"input": {"seconds": 0}})
            self.assertEqual((status, body["output"], body["logs"]), (200, "woke up", "sleeping\n"))
        finally:
            self.assertEqual(server.stop(), 0)

    def test_cancel_interrupts_a_prediction_whose_input_was_large(self):
        # The runner holds SIGIO back while it reads a large frame (the kernel
        # raises it for each piece); it must be let through once predict()
        # runs, or the cancel waits for --cancel-timeout and a new runner.
        server = CogServer("sleeper", args=["--cancel-timeout", "120"])
        try:
            server.wait_for_status("READY")
            runners = server.runner_pids()
            for round in range(3):
                status, _, _ = server.request(
                    "POST", "/predictions",
                    {"id": "large-%d" % round, "input": {"padding": "x" * (2 << 20)}},
                    headers={"Prefer": "respond-async"})
                self.assertEqual(status, 202)
                wait_until(lambda: server.health()["status"] == "BUSY", what="the prediction to start")
                status, _, _ = server.request("POST", "/predictions/large-%d/cancel" % round)
                self.assertEqual(status, 200)
                server.wait_for_status("READY", timeout=30)
            self.assertEqual(server.runner_pids(), runners, "the runner was replaced, not interrupted")
            status, _, body = server.request("POST", "/predictions",
                                             {"input": {"seconds": 0, "padding": "y" * (1 << 20)}})
            self.assertEqual((status, body["output"]), (200, "woke up"))
        finally:
            self.assertEqual(server.stop(), 0)

    def cancel_tokens_three_times(self, sync):
        """The tokens predictor (a fast generator) started three times, each
        canceled once more than 100 of its tokens have come: each must end
        canceled at once with its first tokens kept, the runner interrupted,
        not replaced (--cancel-timeout is long: a missed cancel times out)."""
        server = CogServer("tokens", args=["--cancel-timeout", "120"])
        try:
            server.wait_for_status("READY")
            runners = server.runner_pids()
            for round in range(3):
                pid = "%s-tokens-%d" % ("sync" if sync else "async", round)
                answer = {}
                if sync:
                    thread = threading.Thread(target=lambda: answer.update(zip(
                        ("status", "headers", "body"),
                        server.request("POST", "/predictions", {"id": pid, "input": {"seconds": 60}},
                                       timeout=90))))
                    thread.start()
                else:
                    status, _, _ = server.request("POST", "/predictions", {"id": pid, "input": {}},
                                                  headers={"Prefer": "respond-async"})
                    self.assertEqual(status, 202)

                def tokens_came():
                    status, _, body = server.request("GET", "/predictions/" + pid)
                    return status == 200 and len(body.get("output") or []) > 100

                wait_until(tokens_came, what="the generator's first tokens")
                status, _, _ = server.request("POST", "/predictions/%s/cancel" % pid)
                self.assertEqual(status, 200)
                if sync:
                    thread.join(60)
                    self.assertFalse(thread.is_alive(), "the sync answer did not come after the cancel")
                    status, body = answer["status"], answer["body"]
                else:
                    server.wait_for_status("READY", timeout=30)
                    status, _, body = server.request("GET", "/predictions/" + pid)
                self.assertEqual((status, body["status"]), (200, "canceled"))
                self.assertGreater(len(body["output"]), 100)
                self.assertEqual(body["output"][:2], ["tok0 ", "tok1 "])
            self.assertEqual(server.runner_pids(), runners, "the runner was replaced, not interrupted")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_cancel_interrupts_a_fast_generator_of_tokens(self):
        # A polled prediction's items go one by one. Between two items the
        # runner is outside user code, where SIGIO only marks input as
        # waiting: the next item's start must read the Cancel, or it waits
        # for --cancel-timeout and a new runner.
        self.cancel_tokens_three_times(sync=False)

    def test_cancel_interrupts_a_sync_generator_taken_a_run_at_a_time(self):
        # A sync request's items are batched (Predict.batch_text_items): the
        # runner takes them from the generator several at a time in C code,
        # and holds them outside user code in between. Either way the Cancel
        # must end the prediction at once, with the items before it kept.
        self.cancel_tokens_three_times(sync=True)

    def test_sigterm_cancels_a_prediction_that_outlives_the_grace_period(self):
        server = CogServer("sleeper", args=["--runner-shutdown-grace-period", "0.5"])
        try:
            server.wait_for_status("READY")
            status, _, _ = server.request("POST", "/predictions", {"input": {}},
                                          headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202)
            started = time.monotonic()
            self.assertEqual(server.stop(), 0)
            self.assertLess(time.monotonic() - started, 25, "shutdown did not wait for the 600 s sleep")
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
