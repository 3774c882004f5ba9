"""Soak: many predictions and many runner crashes through the real cog-server.

  bazel build //server:cog-server && python3 bench/soak.py [--predictions 10000] [--crashes 100]

Starts cog-server (tests/server_harness.py) on a null predictor that can also
crash its runner (os._exit, SIGSEGV, or SIGKILL, in turn), sends the
predictions one at a time over one keep-alive connection with a crash spread
evenly among them, waits for READY after each crash, and prints what the
server holds before and after: open fds, threads, RSS, entries in its
$TMPDIR, and descendant processes. Exits 1 if a prediction got a wrong
answer, or if fds, threads, temp entries or processes are not back where
they were (RSS is printed, not judged: allocators keep what they freed).
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import server_harness  # noqa: E402
from string_io import descendants  # noqa: E402 - bench/ is on sys.path beside this script
from server_harness import CogServer, wait_until  # noqa: E402

MODEL = {
    "cog.yaml": 'predict: "predict.py:Predictor"\n',
    "predict.py": '''import ctypes
import os
import signal

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, crash: str = "") -> str:
        if crash == "exit":
            os._exit(1)
        if crash == "segfault":
            ctypes.string_at(0)
        if crash == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return ""
''',
}
CRASHES = [("exit", "exited with code 1"), ("segfault", "signal 11"), ("kill", "signal 9")]


def snapshot(server: CogServer) -> Dict[str, int]:
    pid = server.process.pid
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()[0] if value.split() else ""
    return {
        "fds": len(os.listdir("/proc/%d/fd" % pid)),
        "threads": int(status["Threads"]),
        "rss_kib": int(status["VmRSS"]),
        "temp_entries": len(server.temp_entries()),
        "processes": len(descendants(pid)),
    }


class Client:
    """One keep-alive connection, opened again if the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def predict(self, crash: str = "") -> Tuple[int, dict]:
        body = json.dumps({"input": {"crash": crash} if crash else {}})
        for attempt in range(2):
            try:
                self.connection.request("POST", "/predictions", body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                return response.status, json.loads(response.read())
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=10000)
    parser.add_argument("--crashes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--server", default=os.path.join(ROOT, "bazel-bin/server/cog-server"))
    args = parser.parse_args()
    server_harness.SERVER_BINARY = args.server

    # Each crash counts alone in a 1 s window: the first backoff (0.5 s) every time.
    server = CogServer(files=MODEL, args=["--runner-restart-limit", str(args.crashes + 1),
                                          "--runner-restart-window", "1"])
    failures: List[str] = []
    try:
        server.wait_for_status("READY")
        client = Client(server.http_port)
        for _ in range(args.warmup):
            client.predict()
        # The crash loop polls /health-check on a second connection while the
        # client's is open: the HTTP server's pool grows a thread for it once.
        server.health()
        before = snapshot(server)

        every = max(1, args.predictions // max(1, args.crashes))
        restarts: List[float] = []
        latencies: List[float] = []
        crashes = 0
        started = time.monotonic()
        for i in range(args.predictions):
            t0 = time.monotonic()
            status, body = client.predict()
            latencies.append(time.monotonic() - t0)
            if status != 200 or body.get("status") != "succeeded":
                failures.append("prediction %d: %s %s" % (i, status, body))
            if crashes < args.crashes and i % every == every - 1:
                kind, expected = CRASHES[crashes % len(CRASHES)]
                crashes += 1
                t0 = time.monotonic()
                status, body = client.predict(kind)
                if status != 200 or body.get("status") != "failed" or expected not in (body.get("error") or ""):
                    failures.append("crash %d (%s): %s %s" % (crashes, kind, status, body))
                wait_until(lambda: server.health()["status"] == "READY", 120, "READY after crash %d" % crashes)
                restarts.append(time.monotonic() - t0)
        elapsed = time.monotonic() - started
        wait_until(lambda: server.health()["status"] == "READY", 120, "READY at the end")
        after = snapshot(server)
        health = server.health()
    finally:
        code = server.stop()
    left = server.left_in_tmpdir

    print("%d predictions and %d runner crashes in %.1f s" % (args.predictions, crashes, elapsed))
    print("prediction latency: p50 %.2f ms, p99 %.2f ms (null predictor, one keep-alive client)" % (
        statistics.median(latencies) * 1e3, sorted(latencies)[int(len(latencies) * 0.99)] * 1e3))
    if restarts:
        print("crash to READY: p50 %.2f s, max %.2f s (0.5 s of it is the restart backoff)" % (
            statistics.median(restarts), max(restarts)))
    print("final health: %s, setup %s" % (health["status"], health["setup"]["status"]))
    print()
    print("%-14s %10s %10s" % ("", "before", "after"))
    for key in ("fds", "threads", "rss_kib", "temp_entries", "processes"):
        print("%-14s %10d %10d" % (key, before[key], after[key]))
    print()
    print("server exit code %d; left in its TMPDIR: %s" % (code, left or "nothing"))
    for key in ("fds", "threads", "temp_entries", "processes"):
        if after[key] != before[key]:
            failures.append("%s: %d before, %d after" % (key, before[key], after[key]))
    if code != 0 or left:
        failures.append("exit code %d, left %s" % (code, left))
    for failure in failures[:20]:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
