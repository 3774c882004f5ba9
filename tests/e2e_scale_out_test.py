"""Scale-out across pods, as Kubernetes runs it: two cog-server processes on
their own ports behind (1) one gRPC client with round_robin over both
addresses and (2) a real nginx (Debian's) balancing HTTP over both. One server
is killed (SIGKILL, a crashed pod) while predictions run on both; the
client's retries succeed on the other and nothing is lost: every gRPC
prediction gets its answer, every async REST prediction exactly one terminal
webhook.

What the clients do is what a client of many pods must do: retry a call that
failed because its server went away (gRPC UNAVAILABLE; HTTP 502/503 or a
refused connection), and, for async predictions whose webhook never came,
ask for the prediction (GET /predictions/{id}) and submit it again under the
same id when no server knows it.
"""

import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

import grpc
from google.protobuf import struct_pb2

from cogapi.v1 import predictor_pb2, predictor_pb2_grpc
from http_receiver import Receiver
from server_harness import CogServer, wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def struct(**fields):
    value = struct_pb2.Struct()
    value.update(fields)
    return value


def succeeded(server: CogServer) -> int:
    _, _, text = server.request("GET", "/metrics")
    found = re.search(r'^cog_predictions_total\{kind="predict",status="succeeded"\} (\d+)', text, re.M)
    return int(found.group(1)) if found else 0


class TwoServers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cog-scale-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.gate = os.path.join(self.tmp, "gate")  # predictions wait until it exists
        self.servers = []
        for _ in range(2):
            server = CogServer("async_sleep")  # concurrency.max 4
            self.addCleanup(server.close)
            self.servers.append(server)
        for server in self.servers:
            server.wait_for_status("READY")

    def wait_started(self, server: CogServer, count: int):
        wait_until(lambda: server.health()["concurrency"]["current"] == count,
                   what="%d predictions running on port %d" % (count, server.http_port))


class GrpcRoundRobinTest(TwoServers):
    def test_round_robin_spreads_and_retries_survive_a_killed_server(self):
        a, b = self.servers
        target = "ipv4:127.0.0.1:%d,127.0.0.1:%d" % (a.grpc_port, b.grpc_port)
        channel = grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
        self.addCleanup(channel.close)
        stub = predictor_pb2_grpc.PredictorStub(channel)
        grpc.channel_ready_future(channel).result(timeout=30)

        def call(name):
            answer = stub.Predict(predictor_pb2.PredictionRequest(id=name, input=struct(name=name)), timeout=30)
            self.assertEqual(answer.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)

        # The channel is ready once one subchannel is; round_robin uses the
        # second only once it has connected too. Calls until both have
        # answered one (no sleep: each call is a real prediction).
        for i in range(500):
            if succeeded(a) and succeeded(b):
                break
            call("warm-%d" % i)
        before = (succeeded(a), succeeded(b))
        self.assertTrue(all(before), "round_robin never reached both servers: %s" % (before,))

        # Spread: sequential calls alternate between the two.
        for i in range(20):
            call("rr-%d" % i)
        spread = (succeeded(a) - before[0], succeeded(b) - before[1])
        print("gRPC round_robin spread over 20 calls: %d / %d (after %d warm-up calls)" % (spread + (sum(before),)))
        self.assertEqual(sum(spread), 20)
        self.assertGreaterEqual(min(spread), 5, spread)

        # Four predictions held at the gate, on both servers (B has room for all
        # four: concurrency.max 4); then A is killed.
        def predict_with_retries(name):
            attempts = 0
            while True:
                attempts += 1
                try:
                    answer = stub.Predict(predictor_pb2.PredictionRequest(
                        id=name, input=struct(name=name, gate=self.gate)), timeout=60)
                    return answer, attempts
                except grpc.RpcError as e:
                    # The server went away under the call, or the call found it gone.
                    if e.code() != grpc.StatusCode.UNAVAILABLE or attempts >= 10:
                        raise
        names = ["held-%d" % i for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            futures = {name: pool.submit(predict_with_retries, name) for name in names}
            wait_until(lambda: a.health()["concurrency"]["current"] + b.health()["concurrency"]["current"] == 4,
                       what="four predictions running")
            on_a = a.health()["concurrency"]["current"]
            self.assertGreater(on_a, 0, "some run on the server about to die")
            killed_at = time.monotonic()
            a.process.send_signal(signal.SIGKILL)
            a.process.wait(30)
            self.wait_started(b, 4)  # the retries of A's predictions reached B
            recovered = time.monotonic() - killed_at
            open(self.gate, "w").close()
            results = {name: future.result(timeout=60) for name, future in futures.items()}
        for name, (answer, attempts) in results.items():
            self.assertEqual((answer.status, answer.output.string_value),
                             (predictor_pb2.PREDICTION_STATUS_SUCCEEDED, name))
        retried = sum(1 for _, attempts in results.values() if attempts > 1)
        print("gRPC: %d of 4 held predictions were on the killed server and were retried; all 4 on B "
              "after %.0f ms" % (retried, recovered * 1000))
        self.assertEqual(retried, on_a)

        # From now on every call goes to B.
        before = succeeded(b)
        for i in range(10):
            answer, _ = predict_with_retries("after-%d" % i)
            self.assertEqual(answer.status, predictor_pb2.PREDICTION_STATUS_SUCCEEDED)
        self.assertEqual(succeeded(b) - before, 10)


class Nginx:
    """Debian's nginx balancing HTTP round-robin over `ports`, retrying a
    request on the next server when one refuses the connection, resets it or
    answers 502/503 (also POST and PUT: the servers make them idempotent by id)."""

    def __init__(self, tmp, ports):
        self.prefix = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.prefix, "logs"))
        self.error_log = os.path.join(self.prefix, "logs", "error.log")
        for attempt in range(5):
            self.port = self._free_port()
            conf = os.path.join(self.prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self._config(ports))
            self.process = subprocess.Popen(
                [NGINX, "-p", self.prefix, "-c", conf, "-e", self.error_log, "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            try:
                wait_until(self._listening, 10, "nginx to listen")
                return
            except AssertionError:
                self.close()  # the port was taken meanwhile: another
        raise AssertionError("nginx did not start: %s" % open(self.error_log).read())

    @staticmethod
    def _free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def _config(self, ports):
        servers = "".join("    server 127.0.0.1:%d max_fails=1 fail_timeout=30s;\n" % p for p in ports)
        return """
worker_processes 1;
pid %(prefix)s/nginx.pid;
%(user)s
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %(prefix)s/body;
  proxy_temp_path %(prefix)s/proxy;
  fastcgi_temp_path %(prefix)s/fastcgi;
  uwsgi_temp_path %(prefix)s/uwsgi;
  scgi_temp_path %(prefix)s/scgi;
  upstream cog {
%(servers)s    keepalive 16;
  }
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass http://cog;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
      add_header X-Upstream $upstream_addr always;
    }
  }
}
""" % {"prefix": self.prefix, "servers": servers, "port": self.port,
       "user": "user root;" if os.geteuid() == 0 else ""}

    def _listening(self):
        if self.process.poll() is not None:
            raise AssertionError("nginx exited: %s" % open(self.error_log).read())
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NginxTest(TwoServers):
    def test_async_predictions_spread_survive_a_killed_server_and_each_webhook_arrives_once(self):
        a, b = self.servers
        receiver = Receiver()
        self.addCleanup(receiver.close)
        nginx = Nginx(self.tmp, [a.http_port, b.http_port])
        self.addCleanup(nginx.close)
        lb = CogServer.__new__(CogServer)  # only its HTTP client, pointed at nginx
        lb.http_port = nginx.port
        run = uuid.uuid4().hex[:8]

        def submit(pid, gated):
            body = {"input": {"name": pid, **({"gate": self.gate} if gated else {})},
                    "webhook": receiver.url + "/hook", "webhook_events_filter": ["completed"]}
            # A client's backoff: 502/503 while servers come and go, 409 while
            # every slot of the pod it reached is taken.
            backoff = 0.005
            for attempt in range(200):
                try:
                    status, headers, answer = lb.request("PUT", "/predictions/" + pid, body,
                                                         headers={"Prefer": "respond-async"}, timeout=30)
                except OSError:
                    status, headers, answer = 0, {}, None
                if status == 202:
                    return headers.get("x-upstream", "")
                self.assertIn(status, (0, 409, 502, 503), answer)
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.2)
            raise AssertionError("%s was never accepted" % pid)

        def terminal(pid):
            return [body for body in receiver.bodies("/hook") if body["id"] == pid]

        # Six held at the gate: round robin puts three on each server.
        held = ["%s-held-%d" % (run, i) for i in range(6)]
        upstreams = [submit(pid, gated=True) for pid in held]
        spread = {port: sum(1 for u in upstreams if u.endswith(":%d" % port)) for port in (a.http_port, b.http_port)}
        print("nginx spread of 6 async predictions: %s" % spread)
        self.assertEqual(sorted(spread.values()), [3, 3], upstreams)
        self.wait_started(a, 3)
        self.wait_started(b, 3)

        # A crashes with three predictions of its own running.
        killed_at = time.monotonic()
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(30)
        after = ["%s-after-%d" % (run, i) for i in range(12)]
        after_upstreams = [submit(pid, gated=False) for pid in after]
        first_after = time.monotonic() - killed_at
        # nginx names every server it tried: A (refused) first, at times, then B.
        self.assertEqual({u.split(", ")[-1] for u in after_upstreams}, {"127.0.0.1:%d" % b.http_port},
                         after_upstreams)
        open(self.gate, "w").close()

        # The client: every prediction without a terminal webhook is asked for,
        # and submitted again when no server knows it.
        everything = held + after
        resubmitted = []

        def settled():
            waiting = [pid for pid in everything if not terminal(pid)]
            for pid in waiting:
                status, _, answer = lb.request("GET", "/predictions/" + pid)
                if status == 404 and pid not in resubmitted:
                    resubmitted.append(pid)
                    submit(pid, gated=False)
                elif status == 200 and answer["status"] in ("succeeded", "failed", "canceled"):
                    pass  # ended: its webhook is on its way
            return not waiting
        wait_until(settled, 60, "a terminal webhook for each of %d predictions" % len(everything))
        for pid in everything:
            bodies = terminal(pid)
            self.assertEqual(len(bodies), 1, (pid, bodies))
            self.assertEqual((bodies[0]["status"], bodies[0]["output"]), ("succeeded", pid))
        print("nginx: A killed with 3 running; first prediction accepted after the kill in %.0f ms; "
              "resubmitted %d (%s); %d predictions, one terminal webhook each" %
              (first_after * 1000, len(resubmitted), ", ".join(sorted(resubmitted)), len(everything)))
        self.assertEqual(sorted(resubmitted), sorted(p for p, u in zip(held, upstreams)
                                                     if u.endswith(":%d" % a.http_port)))
        # Nothing more arrives: each webhook came once (B has nothing left to send).
        wait_until(lambda: b.health()["concurrency"]["current"] == 0, what="B idle")
        self.assertEqual(len(receiver.bodies("/hook")), len(everything))


if __name__ == "__main__":
    unittest.main()
