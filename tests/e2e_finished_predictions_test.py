"""Ended predictions stay readable for a while (--finished-predictions-max,
--finished-predictions-ttl): an async client reads the result with gRPC
GetPrediction or GET /predictions/{id} after the prediction ended, through the
real binary. Per server process: another server does not know them."""

import unittest

import grpc

from cogapi.v1 import predictor_pb2, predictor_pb2_grpc
from http_receiver import Receiver
from server_harness import CogServer


class FinishedPredictionsTest(unittest.TestCase):
    def start(self, *args):
        server = CogServer("echo", args=list(args))
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        channel = grpc.insecure_channel("127.0.0.1:%d" % server.grpc_port)
        self.addCleanup(channel.close)
        return server, predictor_pb2_grpc.PredictorStub(channel)

    def run_async(self, server, receiver, pid, text):
        status, _, answer = server.request("PUT", "/predictions/" + pid,
                                           {"input": {"s": text}, "webhook": receiver.url + "/" + pid,
                                            "webhook_events_filter": ["completed"]},
                                           headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, answer)
        receiver.wait_for(lambda: receiver.received("/" + pid, accepted_only=True), what=pid)

    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    def test_a_finished_async_prediction_is_read_over_rest_and_grpc(self):
        server, stub = self.start()
        self.run_async(server, self.receiver, "f-1", "hello")
        status, _, answer = server.request("GET", "/predictions/f-1")
        self.assertEqual(status, 200, answer)
        webhook = self.receiver.bodies("/f-1")[0]
        self.assertEqual(answer, webhook, "the same final state the webhook carried")
        self.assertEqual(answer["status"], "succeeded")
        prediction = stub.GetPrediction(predictor_pb2.GetPredictionRequest(id="f-1"), timeout=10)
        self.assertEqual(prediction.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)
        self.assertEqual(prediction.output.string_value, "hello")
        # Unknown ids are 404 / NOT_FOUND.
        self.assertEqual(server.request("GET", "/predictions/nope")[0], 404)
        with self.assertRaises(grpc.RpcError) as raised:
            stub.GetPrediction(predictor_pb2.GetPredictionRequest(id="nope"), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_the_store_keeps_the_newest_max_and_forgets_after_the_ttl(self):
        server, _ = self.start("--finished-predictions-max=2")
        for i in range(3):
            self.run_async(server, self.receiver, "m-%d" % i, "x%d" % i)
        self.assertEqual(server.request("GET", "/predictions/m-0")[0], 404, "pushed out by newer ones")
        self.assertEqual(server.request("GET", "/predictions/m-1")[2]["output"], "x1")
        self.assertEqual(server.request("GET", "/predictions/m-2")[0], 200)

        expired, _ = self.start("--finished-predictions-ttl=0")
        self.run_async(expired, self.receiver, "t-0", "gone")
        self.assertEqual(expired.request("GET", "/predictions/t-0")[0], 404)

    def test_each_server_knows_only_its_own(self):
        first, _ = self.start()
        second, _ = self.start()
        self.run_async(first, self.receiver, "own-1", "mine")
        self.assertEqual(first.request("GET", "/predictions/own-1")[0], 200)
        self.assertEqual(second.request("GET", "/predictions/own-1")[0], 404)


if __name__ == "__main__":
    unittest.main()
