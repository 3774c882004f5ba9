#!/usr/bin/env python3
"""Every workload of issue 11 against the real cog-server, with the floors, in one run.

Builds cog-server (-c opt), the floor benchmark and the gRPC client stubs, then
measures with wrk (one thread; one keep-alive connection unless said) on the
predictors in bench/predictors/:

  floors      Unix-socket round trip to a C++ and to a Python peer (uds_floor),
              the server's own GET /health-check (never reaches the runner)
  null        POST /predictions, echo predictor; then the RSS of the server,
              the runner's guardian and the runner
  startup     exec of cog-server to its first READY health check, 11 starts
  async       async echo predictor (concurrency.max 32) at 1, 2, 4, 8, 16 and 32 connections
  generator   a generator of 100 items, sync request (the whole list back),
              then as server-sent events (Accept: text/event-stream); and 50
              items 2 ms apart (a model's tokens) as server-sent events
  first item  how long after the predictor yields its first item it reaches
              an SSE client and a gRPC PredictStream client (the item is the
              time it was yielded; clients in Python, their overhead included)
  1 MiB       a 1 MiB string in (int out), and out (short input)
  data URI    a 10 MiB Path output returned as a data: URI, and the server's
              RSS after it
  upload      a 10 MiB file uploaded as a Path output is (cog::UploadFile,
              upload_bench) beside sendfile(2) of it, on loopback

Each row shows p50/p99, req/s, the p50 as a multiple of the health-check
floor, legacy Cog's figure measured on this kind of machine (issue 11's table,
same wrk client) and issue 11's target. Figures are printed, never asserted.

  python3 bench/workloads.py [--rev REV] [--duration 5] [--only null,async,...]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import string_io
from string_io import BENCH, REPO, Server, descendants, log, run, wait_for_quiet, write_body

# Legacy Cog 0.16.12 (FastAPI) on this kind of 2-core machine, same wrk client
# (issue 11), and issue 11's targets.
LEGACY = {"start → READY": "690 ms", "null": "p50 666 µs, 1,425 req/s", "async 8": "1,755 req/s", "generator": "p50 1,790 µs",
          "1 MiB in": "p50 4.6 ms", "1 MiB out": "p50 4.3 ms", "data URI": "p50 142 ms, RSS 162 MB"}
TARGET = {"null": "p50 ≤ 70 µs", "generator": "p50 ≤ 400 µs", "1 MiB in": "p50 ≤ 1 ms",
          "1 MiB out": "p50 ≤ 1 ms", "data URI": "p50 ≤ 25 ms, RSS < 60 MB",
          "first item SSE": "≤ 100 µs", "first item gRPC": "≤ 100 µs", "start → READY": "≤ 150 ms"}
ALL = "floors,null,startup,async,generator,first,string,datauri,upload"


def wrk(port: int, body: Optional[str], seconds: float, connections: int = 1,
        path: str = "/predictions", accept: str = "") -> Dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency"]
    env = dict(os.environ)
    if body is not None:
        command += ["-s", os.path.join(BENCH, "wrk_post.lua")]
        env["COG_BENCH_BODY"] = body
        env["COG_BENCH_ACCEPT"] = accept
    command.append(f"http://127.0.0.1:{port}{path}")
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return string_io.parse_wrk(output)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (its exited threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary context switches of a process's live threads: each a sleep
    that something had to wake."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (the guardian and the runner share the
    interpreter's, copy-on-write) counted once across the processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_to_ready(binary: str, workdir: str, starts: int) -> List[float]:
    """ms from exec of cog-server to its first READY health check (echo predictor)."""
    times = []
    for i in range(starts):
        port_file = os.path.join(workdir, f"start-{i}.json")
        started = time.perf_counter()
        process = subprocess.Popen([binary, "--working-directory", os.path.join(BENCH, "predictors", "echo"),
                                    "--host", "127.0.0.1", "--port", "0", "--grpc-port", "-1",
                                    "--port-file", port_file],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = None
        while True:
            if port is None:
                try:
                    with open(port_file) as f:
                        port = json.load(f)["http"]
                except (OSError, ValueError, KeyError):
                    time.sleep(0.0005)
                    continue
            try:
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"GET /health-check HTTP/1.1\r\nHost: x\r\n\r\n")
                    if b'"READY"' in sock.recv(65536):
                        break
            except OSError:
                pass
            time.sleep(0.0005)
        times.append((time.perf_counter() - started) * 1e3)
        process.terminate()
        process.wait()
    return times


def sse_item_latencies(port: int, n: int, rounds: int) -> List[float]:
    """µs from each item's yield (its value) to its arrival over SSE."""
    latencies = []
    body = json.dumps({"input": {"n": n}}).encode()
    for _ in range(rounds):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        buffer = b""
        done = False
        while not done:
            data = sock.recv(65536)
            arrived = time.time_ns()
            if not data:
                break
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                lines = event.split(b"\n")
                kind = next((l[7:] for l in lines if l.startswith(b"event: ")), b"")
                payload = b"".join(l[6:] for l in lines if l.startswith(b"data: "))
                if kind == b"output":
                    item = json.loads(payload)
                    if item["index"] == 0:
                        latencies.append((arrived - int(item["value"])) / 1e3)
                elif kind == b"completed":
                    done = True
        sock.close()
    return latencies


def grpc_item_latencies(bin_dir: str, port: int, n: int, rounds: int) -> List[float]:
    sys.path.insert(0, os.path.join(bin_dir, "tests", "pygen"))
    import grpc
    from cogapi.v1 import predictor_pb2, predictor_pb2_grpc

    latencies = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = predictor_pb2_grpc.PredictorStub(channel)
        for _ in range(rounds):
            request = predictor_pb2.PredictionRequest()
            request.input.update({"n": n})
            for message in stub.PredictStream(request, timeout=60):
                arrived = time.time_ns()
                if message.HasField("output") and message.output.index == 0:
                    latencies.append((arrived - int(message.output.value.string_value)) / 1e3)
    return latencies


def percentile(values: List[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", help="measure this commit (exported and built apart)")
    parser.add_argument("--server", help="measure this cog-server binary instead (its runfiles beside "
                        "it); the floors and clients are built from the working tree")
    parser.add_argument("--duration", type=float, default=5, help="seconds of wrk per case")
    parser.add_argument("--only", default=ALL, help="comma-separated: " + ALL)
    parser.add_argument("--quiet-wait", type=float, default=30)
    parser.add_argument("--awake", action="store_true",
                        help="keep every CPU from going idle with SCHED_IDLE spinners (they run only "
                        "when nothing else wants the CPU): on this VM an idle vCPU takes ~30-70 µs to "
                        "wake, which sequential one-connection latencies otherwise mostly measure")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run scripts/setup.sh")
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cog-bench")
    run(["./scripts/setup.sh"], cwd=REPO)
    bin_dir, label = string_io.build(None if args.server else args.rev, cache, "tree", (
        "//server:cog-server", "//bench:uds_floor", "//bench:upload_bench", "//tests:grpc_client_stubs_gen"))
    binary = os.path.join(bin_dir, "server", "cog-server")
    if args.server:
        binary, label = os.path.abspath(args.server), f"binary {args.server}"
    workdir = tempfile.mkdtemp(prefix="cog-workloads-")
    spinners = []
    if args.awake:
        args.quiet_wait = 0  # the spinners are the only other load, by design
        spinners = [subprocess.Popen(["chrt", "--idle", "0", "sh", "-c", "while :; do :; done"])
                    for _ in range(os.cpu_count() or 1)]
    rows = []  # (case, p50 µs, p99 µs, req/s, extra)
    floor_rows = ""
    upload_rows = ""

    def measure(case, server, body, connections=1, path="/predictions", extra="", accept=""):
        wait_for_quiet(args.quiet_wait)
        wrk(server.port, body, 1, connections, path, accept)
        # The warm-up's last requests may still run (wrk closes mid-request; the
        # server cancels them when it sees the close): the measured run starts
        # on an idle server, not with 409s.
        server.wait_ready(30)
        # CPU of the server and of the runner (its guardian and the runner
        # itself) while the case runs: per request, and as busy cores.
        runner = descendants(server.process.pid)
        before = (cpu_seconds(server.process.pid), sum(cpu_seconds(pid) for pid in runner))
        switches = context_switches(server.process.pid)
        started = time.monotonic()
        result = wrk(server.port, body, args.duration, connections, path, accept)
        elapsed = time.monotonic() - started
        used = (cpu_seconds(server.process.pid) - before[0],
                sum(cpu_seconds(pid) for pid in runner) - before[1])
        requests = max(1.0, result["rps"] * args.duration)
        switches = (context_switches(server.process.pid) - switches) / requests
        cpu = (f"CPU/request server {used[0] / requests * 1e6:,.0f} µs, runner {used[1] / requests * 1e6:,.0f} µs"
               f" (cores busy {used[0] / elapsed:.2f} / {used[1] / elapsed:.2f}); server sleeps/request {switches:.1f}")
        extra = (extra + "; " if extra else "") + cpu
        if result["errors"]:
            extra = (extra + "; " if extra else "") + f"{result['errors']} non-2xx"
        rows.append((case, result["p50"] * 1e3, result["p99"] * 1e3, result["rps"], extra))
        log(f"{case}: p50 {result['p50'] * 1e3:.0f} µs, {result['rps']:.0f} req/s")

    def body(name, payload):
        return write_body(workdir, name, payload)[0]

    try:
        if "floors" in only:
            wait_for_quiet(args.quiet_wait)
            floor_rows = subprocess.run([os.path.join(bin_dir, "bench", "uds_floor"), "--round_trips", "50000"],
                                        check=True, capture_output=True, text=True).stdout
        memory = ""
        server = Server(binary, "echo", workdir)
        try:
            measure("GET /health-check (floor)", server, None, path="/health-check")
            if "null" in only:
                measure("null", server, body("null", {"input": {"s": "hello"}}))
                processes = [server.process.pid] + descendants(server.process.pid)
                rss = [rss_kib(pid) / 1024 for pid in processes]
                pss = [pss_kib(pid) / 1024 for pid in processes]
                memory = (f"memory after the null case, MiB, cog-server / the runner's guardian / the runner: "
                          f"RSS {' / '.join(f'{size:.1f}' for size in rss)} (sum {sum(rss):.1f}), "
                          f"PSS {' / '.join(f'{size:.1f}' for size in pss)} (sum {sum(pss):.1f})")
        finally:
            server.stop()
        if "startup" in only:
            wait_for_quiet(args.quiet_wait)
            starts = start_to_ready(binary, workdir, 11)
            rows.append(("start → READY", percentile(starts, 0.5) * 1e3, percentile(starts, 0.99) * 1e3, 0,
                         f"{len(starts)} starts, trivial predictor, runner python3 from PATH"))
        if "async" in only:
            server = Server(binary, "async_echo", workdir)
            try:
                # The curve: throughput should grow with connections until the
                # runner's one core is busy (its "cores busy" near 1).
                for connections in (1, 2, 4, 8, 16, 32):
                    measure(f"async {connections}", server, body("async", {"input": {"s": "hello"}}),
                            connections)
            finally:
                server.stop()
        if "generator" in only:
            server = Server(binary, "async_gen", workdir)
            try:
                for connections in (1, 8):
                    measure(f"async generator {connections}", server, body("gen", {"input": {"n": 100}}),
                            connections, extra="100 items from an async generator")
            finally:
                server.stop()
        if "generator" in only or "first" in only:
            server = Server(binary, "gen", workdir, grpc=True)
            try:
                if "generator" in only:
                    measure("generator", server, body("gen", {"input": {"n": 100}}), extra="100 items")
                    measure("generator SSE", server, body("gen", {"input": {"n": 100}}),
                            extra="100 items as server-sent events", accept="text/event-stream")
                    measure("tokens SSE", server, body("tokens", {"input": {"n": 50, "gap": 0.002}}),
                            extra="50 items 2 ms apart as server-sent events", accept="text/event-stream")
                if "first" in only:
                    wait_for_quiet(args.quiet_wait)
                    sse = sse_item_latencies(server.port, 1, 300)
                    rows.append(("first item SSE", percentile(sse, 0.5), percentile(sse, 0.99), 0,
                                 f"{len(sse)} streams, raw-socket Python client"))
                    try:
                        stream = grpc_item_latencies(bin_dir, server.grpc_port, 1, 300)
                        rows.append(("first item gRPC", percentile(stream, 0.5), percentile(stream, 0.99), 0,
                                     f"{len(stream)} streams, Python grpcio client"))
                    except ImportError as e:  # e.g. a python3 that is not Debian's
                        log(f"first item gRPC: skipped ({e}; run with Debian's python3)")
            finally:
                server.stop()
        if "string" in only:
            text = (string_io.UNIT * (string_io.MIB // len(string_io.UNIT) + 1))[:string_io.MIB]
            server = Server(binary, "length", workdir)
            try:
                measure("1 MiB in", server, body("in", {"input": {"s": text}}))
            finally:
                server.stop()
            server = Server(binary, "text_out", workdir)
            try:
                measure("1 MiB out", server, body("out", {"input": {"unit": string_io.UNIT, "n": string_io.MIB}}))
            finally:
                server.stop()
        if "datauri" in only:
            server = Server(binary, "file_out", workdir)
            try:
                measure("data URI", server, body("datauri", {"input": {"size": 10 << 20}}))
                peak = rss_kib(server.process.pid)
                time.sleep(2)  # the server hands free memory back 1 s after a large transfer
                rows[-1] = rows[-1][:4] + (f"server RSS {peak / 1024:.0f} MiB right after, "
                                           f"{rss_kib(server.process.pid) / 1024:.0f} MiB 2 s later",)
            finally:
                server.stop()
        if "upload" in only:
            wait_for_quiet(args.quiet_wait)
            upload_rows = subprocess.run([os.path.join(bin_dir, "bench", "upload_bench"), "--mib", "10",
                                          "--rounds", "11"], check=True, capture_output=True, text=True).stdout
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"measured: {label}")
    if args.awake:
        print("CPUs kept awake by SCHED_IDLE spinners (--awake)")
    print(f"machine: {os.cpu_count()} CPUs; wrk -t1, {args.duration:g} s per case after 1 s warm-up, "
          "one connection unless the case says")
    print()
    if floor_rows:
        print(floor_rows)
    floor = next((r[1] for r in rows if r[0].startswith("GET /health-check")), None)
    if memory:
        print(memory + "; legacy Cog: 114 MB, target: 45 MB (server 20 MB)")
        print()
    print("| case | p50 µs | p99 µs | req/s | p50 / health floor | legacy Cog | target | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for case, p50, p99, rps, extra in rows:
        ratio = f"{p50 / floor:.1f}×" if floor else "-"
        print(f"| {case} | {p50:,.0f} | {p99:,.0f} | {rps:,.0f} | {ratio} | {LEGACY.get(case, '-')} "
              f"| {TARGET.get(case, '-')} | {extra} |")
    if upload_rows:
        print()
        print(upload_rows.rstrip() + "  (target: 1 GB/s)")


if __name__ == "__main__":
    main()
