#!/usr/bin/env python3
"""What the runner alone costs a prediction: its Worker in a child process on a
Unix socket, driven by this script acting as cog-server (the same Predict
frame N times, each answered before the next goes), without the server, HTTP
or any other process on the path.

  python3 bench/runner_cost.py                       # gen predictor, n=100
  python3 bench/runner_cost.py --predictor echo --input '{"s": "hello"}'
  python3 bench/runner_cost.py --callgrind           # instructions, not time
  python3 bench/runner_cost.py --profile             # where, in Python (cProfile)

Prints the child's CPU per prediction (user + system, /proc) over --count
predictions after --warmup ones; with --callgrind, the child runs under
valgrind's callgrind twice (--count predictions and none) and the difference
in instructions, divided by --count, is printed: repeatable to a fraction of a
percent on these noisy machines, where CPU times are not.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Tuple

from string_io import BENCH, REPO
from workloads import cpu_seconds

sys.path.insert(0, os.path.join(REPO, "runner"))

from cog_runner import messages, wire  # noqa: E402

CHILD = """
import sys
sys.path.insert(0, {runner!r})
from cog_runner.worker import Worker
worker = Worker({socket!r}, {directory!r}, "predict.py:Predictor", "", 1)
if {profile!r}:
    import cProfile
    cProfile.run("worker.run()", {profile!r})
else:
    sys.exit(worker.run())
"""


def read_frame(conn: socket.socket) -> Tuple[str, Dict[str, Any]]:
    def exactly(n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise SystemExit("the runner closed the socket")
            data += chunk
        return bytes(data)

    (size,) = struct.unpack(">I", exactly(4))
    return wire.decode_member(messages.RUNNER_MESSAGE, exactly(size))


def send(conn: socket.socket, name: str, fields: Dict[str, Any]) -> None:
    conn.sendall(wire.encode_member_frame(messages.SERVER_MESSAGE, name, fields))


def wait_blocked(pid: int, timeout: float = 2.0) -> None:
    """Waits until the process's main thread sleeps in the kernel (its recv())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%d/task/%d/wchan" % (pid, pid)) as f:
                wchan = f.read()
        except OSError:
            return
        if state == "S" and wchan not in ("", "0"):
            return
        time.sleep(0.0002)


def run(args: argparse.Namespace, count: int, callgrind_out: str = "", profile: str = "") -> float:
    """Runs the child through `count` predictions after the warm-up; returns
    its CPU seconds over those predictions."""
    with tempfile.TemporaryDirectory(prefix="cog-runner-cost-") as tmp:
        path = os.path.join(tmp, "runner.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        directory = (os.path.join(REPO, args.predictor) if "/" in args.predictor
                     else os.path.join(BENCH, "predictors", args.predictor))
        command = [sys.executable, "-c", CHILD.format(
            runner=args.runner, socket=path, directory=directory, profile=profile)]
        if callgrind_out:
            command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + callgrind_out] + command
        child = subprocess.Popen(command, stderr=subprocess.DEVNULL if callgrind_out else None)
        listener.settimeout(120)
        conn, _ = listener.accept()
        try:
            name, hello = read_frame(conn)
            if name != "hello" or hello.get("load_error"):
                raise SystemExit("no Hello from the runner: %s %s" % (name, hello))
            send(conn, "setup", {})
            while True:
                name, fields = read_frame(conn)
                if name == "setup_done":
                    if not fields.get("succeeded"):
                        raise SystemExit("setup failed: %s" % fields.get("error"))
                    break
            # As for a sync request (the server may take a generator's items in
            # batches), or with --stream as for an SSE or gRPC stream client.
            batch = not args.stream
            predict = {"input_json": json.dumps(args.input).encode(), "context_json": b"{}",
                       "batch_outputs": batch, "batch_text_items": batch}

            def one(i: int) -> None:
                # As with a server whose next request comes a little later: the
                # runner's main thread waits in recv() again first (a frame that
                # comes before is announced by SIGIO, a path of its own).
                wait_blocked(child.pid)
                send(conn, "predict", dict(predict, id="p%d" % i))
                while True:
                    name, fields = read_frame(conn)
                    if name == "done":
                        if fields.get("status") != messages.DONE_SUCCEEDED:
                            raise SystemExit("prediction failed: %s" % fields.get("error"))
                        return

            for i in range(args.warmup):
                one(i)
            before = cpu_seconds(child.pid)
            for i in range(count):
                one(args.warmup + i)
            spent = cpu_seconds(child.pid) - before
            send(conn, "shutdown", {})
        finally:
            conn.close()
            listener.close()
        child.wait(60)
        return spent


def instructions(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit("no totals in " + path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", default="gen",
                        help="a folder of bench/predictors, or a path from the repository's root "
                        "(tests/predictors/async_gen_many)")
    parser.add_argument("--input", type=json.loads, default={"n": 100}, help="the input, JSON")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--stream", action="store_true",
                        help="a Predict without batch_outputs: each item its own Output frame, "
                        "as for a client that streams them (SSE, gRPC PredictStream)")
    parser.add_argument("--runner", default=os.path.join(REPO, "runner"),
                        help="the folder holding cog_runner (a copy, to compare with)")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="run the child under cProfile and print its 25 costliest functions "
                        "(own time; the profiler's overhead inflates small calls)")
    parser.add_argument("--keep", metavar="DIR", help="with --callgrind: leave the two callgrind "
                        "files in DIR (callgrind.N, callgrind.0) for callgrind_annotate --diff")
    args = parser.parse_args()
    if args.callgrind:
        with tempfile.TemporaryDirectory(prefix="cog-runner-callgrind-") as tmp:
            folder = args.keep or tmp
            os.makedirs(folder, exist_ok=True)
            runs = {}
            for count in (args.count, 0):
                out = os.path.join(folder, "callgrind.%d" % count)
                run(args, count, out)
                runs[count] = instructions(out)
        per = (runs[args.count] - runs[0]) / args.count
        print("%s %s: %.1f k instructions per prediction (%d predictions: %d, none: %d)"
              % (args.predictor, json.dumps(args.input), per / 1e3, args.count, runs[args.count], runs[0]))
    elif args.profile:
        import pstats
        with tempfile.TemporaryDirectory(prefix="cog-runner-profile-") as tmp:
            out = os.path.join(tmp, "profile")
            run(args, args.count, profile=out)
            pstats.Stats(out).sort_stats("tottime").print_stats(25)
    else:
        started = time.monotonic()
        spent = run(args, args.count)
        print("%s %s: runner CPU %.1f us per prediction (%d predictions in %.1f s)"
              % (args.predictor, json.dumps(args.input), spent / args.count * 1e6, args.count,
                 time.monotonic() - started))


if __name__ == "__main__":
    main()
