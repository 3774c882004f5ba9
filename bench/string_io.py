#!/usr/bin/env python3
"""Large strings in and out of the real cog-server, measured with wrk (issue 8).

Builds cog-server with -c opt, starts it on an ephemeral port for each predictor
in bench/predictors/ and drives POST /predictions with wrk (one thread, one
keep-alive connection by default, sequential requests), then prints p50, p99 and
requests/s for:

  null     echo predictor, {"s":"hello"}                (the floor)
  in       length predictor, 1 MiB string in, int out
  out      text_out predictor, short input, 1 MiB string out
  echo     echo predictor, 1 MiB string in and out

and each p50 as a multiple of the floor's. Then a predictor that prints 80,000
lines: time to answer a sync request, the same with a webhook to a local
http.server receiver (time to the sync answer and to the `completed` webhook),
and async (Prefer: respond-async) to the `completed` webhook.

  python3 bench/string_io.py                # the working tree as it is
  python3 bench/string_io.py --rev HEAD     # a commit, exported and built apart
                                            # from anyone's uncommitted edits

Legacy Cog on this machine (same wrk client): 1 MiB in 4.6 ms p50, out 4.3 ms.
Target (issue 8): p50 under 1 ms for both.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
PREDICTORS = os.path.join(BENCH, "predictors")

# Prose as a prompt carries it: line breaks, a tab, quotes and a backslash (all
# escaped in JSON) and non-ASCII words (2- to 4-byte UTF-8). Repeated to size.
UNIT = (
    'Write a short story about light and water in spring, "in the style" of a\n'
    "city at night: café, naïve, Zürich, 日本語, привет, 😀.\tThen C:\\path, 5€.\n"
)
# Plain ASCII with nothing to escape, for telling the cost of escapes and
# UTF-8 apart from the cost of size (--ascii).
ASCII_UNIT = "Write a short story about light and water in spring, in the style of a city at night. "
MIB = 1 << 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(command: List[str], cwd: str) -> None:
    log("+ " + " ".join(command))
    subprocess.run(command, cwd=cwd, check=True)


def source_tree(rev: Optional[str], cache: str, folder: str = "tree") -> Tuple[str, str]:
    """The tree to build and a label of what it is (commit, dirty or not);
    a commit is exported into `cache`/`folder`."""
    if rev is None:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, check=True, capture_output=True, text=True).stdout
        return REPO, head + (" + uncommitted changes in the working tree" if dirty.strip() else "")
    commit = subprocess.run(["git", "rev-parse", "--verify", rev + "^{commit}"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.strip()
    # Always the same folder, so that Bazel's output base (keyed by the
    # workspace path) stays warm between runs.
    tree = os.path.join(cache, folder)
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    archive = subprocess.Popen(["git", "archive", commit], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", tree], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {commit} failed")
    return tree, commit


def build(rev: Optional[str], cache: str, folder: str = "tree",
          targets: Tuple[str, ...] = ("//server:cog-server",)) -> Tuple[str, str]:
    """Builds `targets` with -c opt from the working tree (rev None) or from a
    commit exported into `cache`/`folder`; returns (bazel-bin, label)."""
    tree, label = source_tree(rev, cache, folder)
    run(["bazel", "build", "--color=no", "--curses=no", "-c", "opt", *targets], cwd=tree)
    # Not the bazel-bin link: another build in the same tree may have pointed
    # it at its own configuration meanwhile.
    bin_dir = subprocess.run(["bazel", "info", "--color=no", "-c", "opt", "bazel-bin"], cwd=tree,
                             check=True, capture_output=True, text=True).stdout.strip()
    if tree != REPO:
        # The export's own Bazel server would sit idle in memory while we measure.
        run(["bazel", "shutdown"], cwd=tree)
    return bin_dir, label


class Server:
    """One cog-server process on a predictor, on an ephemeral port."""

    def __init__(self, binary: str, predictor: str, workdir: str, grpc: bool = False):
        self.port_file = os.path.join(workdir, f"ports-{predictor}.json")
        self.log_path = os.path.join(workdir, f"server-{predictor}.log")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "--working-directory", os.path.join(PREDICTORS, predictor),
             "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0" if grpc else "-1",
             "--port-file", self.port_file,
             "--ready-file", os.path.join(workdir, "ready")],
            stdout=self.log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "COG_LOG_LEVEL": "warn"})
        deadline = time.monotonic() + 60
        self.port = 0
        while time.monotonic() < deadline and self.port == 0:
            if self.process.poll() is not None:
                raise SystemExit(f"cog-server exited {self.process.returncode}; see {self.log_path}")
            try:
                with open(self.port_file) as f:
                    ports = json.load(f)
                self.port, self.grpc_port = ports["http"], ports.get("grpc", -1)
            except (OSError, ValueError, KeyError):
                time.sleep(0.02)
        self.predictor = predictor
        self.wait_ready(deadline - time.monotonic())

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.request("GET", "/health-check")
            if status == 200 and json.loads(body).get("status") == "READY":
                return
            time.sleep(0.01)
        raise SystemExit(f"cog-server on {self.predictor} not READY in {timeout:.0f} s; "
                         f"see {self.log_path}")

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body=body,
                               headers={"Content-Type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            return 0, b""
        finally:
            connection.close()

    def stop(self) -> None:
        self.request("POST", "/shutdown")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.log_file.close()


def descendants(pid: int) -> List[int]:
    """Every live descendant of a process (/proc children lists)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children = [int(child) for child in f.read().split()]
                found += children
                pending += children
        except OSError:
            pass
    return found


def _process_tree_cpu(root: int) -> float:
    """CPU seconds of a live process and its live descendants (/proc)."""
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    pending.extend(int(child) for child in f.read().split())
        except (OSError, IndexError, ValueError):
            pass  # it exited meanwhile
    return total


class CpuUsage:
    """How busy other processes kept the machine between construction and stop():
    all CPU time (/proc/stat) less this script's, its waited-for children's (wrk)
    and that of the live server processes in `servers` (servers and runners)."""

    def __init__(self, servers: Tuple[int, ...] = ()):
        self.servers = servers
        self.start = self._sample()
        self.end = self.start

    def _sample(self) -> Tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [int(n) for n in f.readline().split()[1:]]
        machine = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf(
            "SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        ours += sum(_process_tree_cpu(pid) for pid in self.servers)
        return machine, ours, time.monotonic()

    def stop(self) -> None:
        self.end = self._sample()

    def others(self) -> float:
        """Mean number of CPUs other processes kept busy."""
        machine, ours, elapsed = (b - a for a, b in zip(self.start, self.end))
        return max(0.0, machine - ours) / max(elapsed, 1e-9)


def wait_for_quiet(limit: float) -> None:
    """Waits, at most `limit` seconds, until other processes keep less than a
    quarter of a CPU busy (over 3 s): on a shared 2-CPU machine someone's build
    would otherwise be measured too."""
    deadline = time.monotonic() + limit
    while limit > 0:
        usage = CpuUsage()
        time.sleep(3)
        usage.stop()
        busy = usage.others()
        if busy < 0.25:
            return
        if time.monotonic() >= deadline:
            log(f"other processes still keep {busy:.2f} CPUs busy; measuring anyway")
            return
        log(f"waiting for a quiet machine: other processes keep {busy:.2f} CPUs busy")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str) -> Dict[str, float]:
    """p50/p99 in ms, req/s and errors from `wrk --latency` output."""
    result = {}
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if match is None:
            raise SystemExit(f"no {percentile}% latency in wrk output:\n{output}")
        result["p" + percentile] = float(match.group(1)) * UNITS[match.group(2)]
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    errors = 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if match:
        errors += int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if match:
        errors += sum(int(n) for n in match.groups())
    result["errors"] = errors
    return result


def wrk(port: int, body_path: str, seconds: float, connections: int) -> Dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency",
               "-s", os.path.join(BENCH, "wrk_post.lua"), f"http://127.0.0.1:{port}/predictions"]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, "COG_BENCH_BODY": body_path}).stdout
    return parse_wrk(output)


def write_body(workdir: str, name: str, body: dict) -> Tuple[str, bytes]:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    path = os.path.join(workdir, name + ".json")
    with open(path, "wb") as f:
        f.write(data)
    return path, data


# ---- the 80,000-line predictor, with and without a webhook ----

class WebhookReceiver:
    """A local http.server taking webhooks; remembers when each arrived."""

    def __init__(self):
        self.calls: List[Tuple[float, str, int]] = []  # (time, status, bytes)
        self.condition = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                status = json.loads(data).get("status", "")
                with receiver.condition:
                    receiver.calls.append((arrived, status, len(data)))
                    receiver.condition.notify_all()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.condition:
            self.calls = []

    def wait_completed(self, timeout: float) -> Optional[float]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                for arrived, status, _ in self.calls:
                    if status in ("succeeded", "failed", "canceled"):
                        return arrived
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.condition.wait(left)

    def stop(self) -> None:
        self.server.shutdown()


def lines_cases(server: Server, lines: int, repeat: int,
                quiet_wait: float) -> List[Tuple[str, List[Dict[str, float]], float]]:
    """Each case's runs and how many CPUs other processes kept busy meanwhile."""
    receiver = WebhookReceiver()
    cases = []
    modes = [("sync", {}, False), ("sync + webhook", {"webhook": receiver.url}, False),
             ("async + webhook", {"webhook": receiver.url}, True)]
    for name, extra, asynchronous in modes:
        runs = []
        wait_for_quiet(quiet_wait)
        usage = CpuUsage((server.process.pid,))
        for _ in range(repeat):
            receiver.reset()
            body = json.dumps({"input": {"n": lines}, **extra}).encode()
            headers = {"Prefer": "respond-async"} if asynchronous else {}
            start = time.perf_counter()
            status, data = server.request("POST", "/predictions", body, headers)
            answered = time.perf_counter()
            run = {"answer_ms": (answered - start) * 1e3, "response_bytes": len(data)}
            if status not in (200, 202):
                raise SystemExit(f"{name}: HTTP {status}: {data[:300]!r}")
            if not asynchronous:
                prediction = json.loads(data)
                logged = prediction["logs"].count("\n")
                if prediction["status"] != "succeeded" or logged != lines:
                    raise SystemExit(f"{name}: status {prediction['status']}, {logged} log lines")
                run["in_predict_ms"] = prediction["output"] * 1e3
            if extra:
                completed = receiver.wait_completed(120)
                if completed is None:
                    raise SystemExit(f"{name}: no completed webhook in 120 s")
                time.sleep(0.05)  # nothing may follow `completed`; count what came
                run["completed_ms"] = (completed - start) * 1e3
                run["webhooks"] = len(receiver.calls)
                run["webhook_bytes"] = sum(size for _, _, size in receiver.calls)
            runs.append(run)
            server.wait_ready(60)  # the next run must not find this one still finishing
        usage.stop()
        cases.append((name, runs, usage.others()))
    receiver.stop()
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", help="measure this commit (exported and built in a cache "
                        "folder) instead of the working tree")
    parser.add_argument("--server", help="use this cog-server binary (no build)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per case")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of wrk before each case")
    parser.add_argument("--connections", type=int, default=1,
                        help="wrk connections (the predictors are sync, concurrency 1: more than "
                        "one connection measures 409s, not predictions)")
    parser.add_argument("--size", type=int, default=MIB, help="characters of the large string")
    parser.add_argument("--lines", type=int, default=80000, help="lines the print_lines predictor prints")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each print_lines case")
    parser.add_argument("--ascii", action="store_true",
                        help="a large string of plain ASCII (nothing to escape) instead of prose "
                        "with line breaks, quotes, a backslash and non-ASCII")
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="seconds to wait, at most, before each case for other processes to "
                        "leave the CPUs idle (0: do not wait)")
    parser.add_argument("--only", default="floors,null,in,out,echo,lines",
                        help="comma-separated cases to run")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run scripts/setup.sh")

    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cog-bench")
    if args.server:
        binary, label = os.path.abspath(args.server), f"binary {args.server}"
    else:
        tree, label = source_tree(args.rev, cache)
        run(["./scripts/setup.sh"], cwd=REPO)
        run(["bazel", "build", "--color=no", "--curses=no", "-c", "opt", "//server:cog-server"],
            cwd=tree)
        # Not the bazel-bin link: another build in the same tree may have
        # pointed it at its own configuration meanwhile.
        bin_dir = subprocess.run(["bazel", "info", "--color=no", "-c", "opt", "bazel-bin"], cwd=tree,
                                 check=True, capture_output=True, text=True).stdout.strip()
        binary = os.path.join(bin_dir, "server", "cog-server")
        if tree != REPO:
            # The export's own Bazel server would sit idle in memory while we measure.
            run(["bazel", "shutdown"], cwd=tree)

    floor_rows: List[Tuple[str, float, float]] = []
    if "floors" in only:
        # The kernel's share alone: bench/uds_floor moves the large string's
        # size over a Unix socket (as the runner hop) and loopback TCP (as the
        # client's hop), with no HTTP, JSON or copy of ours.
        run(["bazel", "build", "--color=no", "--curses=no", "-c", "opt", "//bench:uds_floor"], cwd=REPO)
        floor_bin = os.path.join(subprocess.run(
            ["bazel", "info", "--color=no", "-c", "opt", "bazel-bin"], cwd=REPO, check=True,
            capture_output=True, text=True).stdout.strip(), "bench", "uds_floor")
        for transport in ([], ["--tcp"]):
            wait_for_quiet(args.quiet_wait)
            out = subprocess.run([floor_bin, "--reply_bytes", str(args.size), "--round_trips", "1000"]
                                 + transport, check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                cells = [cell.strip() for cell in line.strip("|").split("|")]
                if len(cells) == 3 and cells[1].replace(".", "").isdigit():
                    floor_rows.append((cells[0], float(cells[1]) / 1e3, float(cells[2]) / 1e3))

    workdir = tempfile.mkdtemp(prefix="cog-string-io-")
    unit = ASCII_UNIT if args.ascii else UNIT
    text = (unit * (args.size // len(unit) + 1))[: args.size]
    size_bytes = len(text.encode())
    size_name = f"{args.size / MIB:g} MiB" if args.size % (MIB // 4) == 0 else f"{args.size} chars"
    bodies = {
        "null": ("echo", {"input": {"s": "hello"}}, lambda r: r["output"] == "hello"),
        "in": ("length", {"input": {"s": text}}, lambda r: r["output"] == len(text)),
        "out": ("text_out", {"input": {"unit": unit, "n": args.size}}, lambda r: r["output"] == text),
        "echo": ("echo", {"input": {"s": text}}, lambda r: r["output"] == text),
    }
    descriptions = {
        "null": "null predictor (floor)",
        "in": f"{size_name} string in, int out",
        "out": f"short input, {size_name} string out",
        "echo": f"{size_name} string in and out",
    }
    results: Dict[str, Dict[str, float]] = {}
    servers: Dict[str, Server] = {}
    lines_results = []
    try:
        for case in ("null", "in", "out", "echo"):
            if case not in only:
                continue
            predictor, body, check = bodies[case]
            if predictor not in servers:
                servers[predictor] = Server(binary, predictor, workdir)
            server = servers[predictor]
            path, data = write_body(workdir, case, body)
            status, response = server.request("POST", "/predictions", data)
            if status != 200 or not check(json.loads(response)):
                raise SystemExit(f"{case}: HTTP {status}, unexpected response {response[:300]!r}")
            log(f"{case}: request {len(data)} B, response {len(response)} B; wrk {args.duration:g} s")
            wait_for_quiet(args.quiet_wait)
            usage = CpuUsage((server.process.pid,))
            if args.warmup > 0:
                wrk(server.port, path, args.warmup, args.connections)
                server.wait_ready(60)  # the warm-up's last request may still be running
            results[case] = wrk(server.port, path, args.duration, args.connections)
            usage.stop()
            results[case]["others"] = usage.others()
            results[case]["request_bytes"] = len(data)
            results[case]["response_bytes"] = len(response)
        for server in servers.values():
            server.stop()
        servers = {}
        if "lines" in only:
            log(f"lines: {args.lines} printed lines, {args.repeat} runs of each case")
            servers["print_lines"] = Server(binary, "print_lines", workdir)
            lines_results = lines_cases(servers["print_lines"], args.lines, args.repeat,
                                        args.quiet_wait)
    finally:
        for server in servers.values():
            server.stop()

    print()
    print(f"measured: {label}")
    print(f"machine: {os.cpu_count()} CPUs; wrk -t1 -c{args.connections}, {args.duration:g} s per case "
          f"after {args.warmup:g} s warm-up; the large string is {args.size} characters, "
          f"{size_bytes} bytes of UTF-8{' (plain ASCII)' if args.ascii else ''}")
    print("others: how many CPUs other processes kept busy during the case (well above 0, e.g. "
          "someone's build, and its figures are not comparable)")
    print()
    if floor_rows:
        print(f"Floors: the kernel moving {args.size} bytes, no work of ours (bench/uds_floor, "
              "1000 round trips each; a 64-byte message out, the large one back)")
        print()
        print("| floor | p50 ms | p99 ms |")
        print("|---|---|---|")
        for name, p50, p99 in floor_rows:
            print(f"| {name} | {p50:.3f} | {p99:.3f} |")
        # The floor is the faster peer of each transport (the TCP round trip
        # with the forked C++ peer has read ~2x the Python peer's here).
        unix = min((p50 for name, p50, _ in floor_rows if name.startswith("Unix")), default=None)
        tcp = min((p50 for name, p50, _ in floor_rows if name.startswith("loopback")), default=None)
        if unix is not None and tcp is not None:
            print()
            print(f"so about {unix + tcp:.2f} ms for `out` (runner → server over the Unix socket, "
                  f"server → client over TCP) and {unix + 2 * tcp:.2f} ms for `in` and `echo` "
                  "(the client's request and the response both carry the string over TCP) before "
                  "any work of the server's or the runner's")
        print()
    if results:
        floor = results.get("null", {}).get("p50")
        print("| case | request | response | p50 ms | p99 ms | req/s | p50 / floor | errors | others |")
        print("|---|---|---|---|---|---|---|---|---|")
        for case, r in results.items():
            ratio = f"{r['p50'] / floor:.1f}×" if floor else "-"
            print(f"| {case}: {descriptions[case]} | {r['request_bytes']:,} B | {r['response_bytes']:,} B "
                  f"| {r['p50']:.3f} | {r['p99']:.3f} | {r['rps']:.0f} | {ratio} | {r['errors']} "
                  f"| {r['others']:.2f} |")
        if any(r["errors"] for r in results.values()):
            print()
            print("errors: answers other than 2xx (or socket errors) counted by wrk; its percentiles "
                  "include them, so those rows' latencies are not the predictions'. A 409 \"Already "
                  "running a prediction\" here means the server answered a request before its slot "
                  "was free for the client's next one.")
        print()
        print("legacy Cog, same wrk client: 1 MB in 4.6 ms p50, 1 MB out 4.3 ms p50; "
              "target (issue 8): under 1 ms p50 for both")
        print()
    if lines_results:
        print(f"{args.lines} printed lines, {args.repeat} runs each: median (min–max) in ms")
        print()
        print("| case | time to answer | to `completed` webhook | inside predict() | webhooks "
              "| webhook bytes | response bytes | others |")
        print("|---|---|---|---|---|---|---|---|")

        def spread(runs, key):
            if key not in runs[0]:
                return "-"
            values = [run[key] for run in runs]
            return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

        for name, runs, others in lines_results:
            webhooks = f"{statistics.median(r['webhooks'] for r in runs):g}" if "webhooks" in runs[0] else "-"
            webhook_bytes = (f"{statistics.median(r['webhook_bytes'] for r in runs):,.0f}"
                             if "webhook_bytes" in runs[0] else "-")
            print(f"| {name} | {spread(runs, 'answer_ms')} | {spread(runs, 'completed_ms')} "
                  f"| {spread(runs, 'in_predict_ms')} | {webhooks} | {webhook_bytes} "
                  f"| {statistics.median(r['response_bytes'] for r in runs):,.0f} | {others:.2f} |")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
