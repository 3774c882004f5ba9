"""Start -> READY and memory after warm-up of cog-server and its runner (issue 11).

For each variant (a cog-server binary, optionally with the runner directory it
should use), interleaved, `--starts` times: exec of cog-server on the echo
predictor (`predict(self, s: str) -> str: return s`) to its first READY
`GET /health-check` (polled every 0.5 ms once the --port-file is there).
Then one server per variant, `--warmup` null predictions over one keep-alive
connection, a second of rest, and per process (cog-server, the runner's
guardian, the runner): RSS, PSS (shared pages split between the processes that
map them: the guardian and the runner share the interpreter's), private
(USS) memory and threads.

    python3 bench/startup_memory.py                        # the working tree, built -c opt
    python3 bench/startup_memory.py --baseline main        # and main, exported and built apart
    python3 bench/startup_memory.py --variant before=/path/cog-server,/path/runner \\
                                    --variant after=/path/cog-server

Put Debian's python3 first on PATH (the runner is started as `python3`; a
pyenv shim adds ~100 ms to every start). Figures are printed, never asserted.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import string_io  # noqa: E402  (build, descendants, wait_for_quiet, log)

ECHO = os.path.join(string_io.PREDICTORS, "echo")


class Variant:
    def __init__(self, label: str, binary: str, runner: Optional[str]):
        self.label, self.binary, self.runner = label, binary, runner
        self.starts: List[float] = []

    def command(self, workdir: str, port_file: str, grpc: bool) -> List[str]:
        command = [self.binary, "--working-directory", ECHO, "--host", "127.0.0.1", "--port", "0",
                   "--grpc-port", "0" if grpc else "-1", "--port-file", port_file]
        if self.runner:
            command += ["--runner-path", self.runner]
        return command


def read_port(port_file: str, process: subprocess.Popen) -> int:
    while True:
        if process.poll() is not None:
            raise SystemExit(f"cog-server exited {process.returncode}")
        try:
            with open(port_file) as f:
                return json.load(f)["http"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.0005)


def health(port: int) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health-check HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(65536)
    except OSError:
        return b""


def start_to_ready(variant: Variant, workdir: str, grpc: bool) -> float:
    port_file = os.path.join(workdir, "ports.json")
    if os.path.exists(port_file):
        os.unlink(port_file)
    started = time.perf_counter()
    process = subprocess.Popen(variant.command(workdir, port_file, grpc),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = read_port(port_file, process)
        while b'"READY"' not in health(port):
            if process.poll() is not None:
                raise SystemExit(f"cog-server exited {process.returncode}")
            time.sleep(0.0005)
        return (time.perf_counter() - started) * 1e3
    finally:
        process.terminate()
        process.wait()


def memory_of(pid: int) -> Dict[str, float]:
    """MiB of RSS, PSS and private memory, and the thread count, of one process."""
    sizes = {"rss": 0.0, "pss": 0.0, "private": 0.0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key == "Rss":
                sizes["rss"] = int(rest.split()[0]) / 1024
            elif key == "Pss":
                sizes["pss"] = int(rest.split()[0]) / 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                sizes["private"] += int(rest.split()[0]) / 1024
    sizes["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    return sizes


def warm_memory(variant: Variant, workdir: str, grpc: bool, warmup: int) -> List[Tuple[str, Dict[str, float]]]:
    port_file = os.path.join(workdir, "ports.json")
    if os.path.exists(port_file):
        os.unlink(port_file)
    process = subprocess.Popen(variant.command(workdir, port_file, grpc),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = read_port(port_file, process)
        while b'"READY"' not in health(port):
            time.sleep(0.005)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"input": {"s": "hello"}})
        for _ in range(warmup):
            connection.request("POST", "/predictions", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            if b'"succeeded"' not in response.read():
                raise SystemExit(f"{variant.label}: a null prediction did not succeed")
        connection.close()
        time.sleep(1)
        pids = [process.pid] + string_io.descendants(process.pid)
        names = ["cog-server", "guardian", "runner"] + [f"process {pid}" for pid in pids[3:]]
        return [(name, memory_of(pid)) for name, pid in zip(names, pids)]
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL=BINARY[,RUNNER_DIR]: measure this binary (no build); repeatable")
    parser.add_argument("--baseline", help="also measure this commit, exported and built apart")
    parser.add_argument("--starts", type=int, default=21, help="starts per variant (interleaved)")
    parser.add_argument("--warmup", type=int, default=500, help="null predictions before the memory")
    parser.add_argument("--no-grpc", action="store_true", help="--grpc-port -1 (default: gRPC on port 0)")
    parser.add_argument("--quiet-wait", type=float, default=30)
    args = parser.parse_args()
    grpc = not args.no_grpc
    variants: List[Variant] = []
    for spec in args.variant:
        label, _, rest = spec.partition("=")
        binary, _, runner = rest.partition(",")
        variants.append(Variant(label, os.path.abspath(binary), os.path.abspath(runner) if runner else None))
    if not variants:
        cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cog-bench")
        if args.baseline:
            bin_dir, label = string_io.build(args.baseline, cache, "tree-startup")
            variants.append(Variant(label, os.path.join(bin_dir, "server", "cog-server"), None))
        bin_dir, label = string_io.build(None, cache)
        variants.append(Variant(label, os.path.join(bin_dir, "server", "cog-server"), None))
    workdir = tempfile.mkdtemp(prefix="cog-startup-")
    python = subprocess.run(["python3", "-c", "import sys; print(sys.executable, sys.version.split()[0])"],
                            capture_output=True, text=True).stdout.strip()
    string_io.log(f"runner python3: {python}; gRPC {'on' if grpc else 'off'}")

    string_io.wait_for_quiet(args.quiet_wait)
    for variant in variants:  # one unmeasured start each: page cache, .pyc files
        start_to_ready(variant, workdir, grpc)
    for _ in range(args.starts):
        for variant in variants:
            variant.starts.append(start_to_ready(variant, workdir, grpc))
    print(f"\nstart -> READY, ms ({args.starts} starts each, interleaved):")
    print("| variant | median | min | max |")
    print("|---|---|---|---|")
    for variant in variants:
        s = variant.starts
        print(f"| {variant.label} | {statistics.median(s):.1f} | {min(s):.1f} | {max(s):.1f} |")

    print(f"\nmemory after {args.warmup} null predictions, MiB (threads):")
    print("| variant | process | RSS | PSS | private | threads |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        string_io.wait_for_quiet(args.quiet_wait)
        rows = warm_memory(variant, workdir, grpc, args.warmup)
        for name, sizes in rows:
            print(f"| {variant.label} | {name} | {sizes['rss']:.1f} | {sizes['pss']:.1f} | "
                  f"{sizes['private']:.1f} | {sizes['threads']:.0f} |")
        print(f"| {variant.label} | **all** | {sum(r[1]['rss'] for r in rows):.1f} | "
              f"{sum(r[1]['pss'] for r in rows):.1f} | {sum(r[1]['private'] for r in rows):.1f} | "
              f"{sum(r[1]['threads'] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
