#!/usr/bin/env python3
"""What capturing the predictor's logs costs a null prediction (issue 10), with wrk.

The runner reads fds 1 and 2 through pipes and, before each prediction's Done,
makes sure everything written there has been sent (FdCapture.settle). This
measures POST /predictions on bench/predictors/log_one, one keep-alive
connection, sequential requests, for three cases:

  none    the predictor writes nothing                  (the null prediction)
  print   it prints one line (sys.stdout, Python level)
  fd      it writes one line to fd 1 (as C code or a subprocess does)

for the working tree (or --rev) and for a baseline commit built apart
(--baseline, default: the commit before fd capture), interleaved round by
round in the same run, and prints the median p50 of each and the difference.
Without capture, the baseline's fd case writes into the server's own stdout and
is not in the prediction's logs: its figure is what losing the line costs.

  python3 bench/log_capture.py [--baseline REV] [--rev REV] [--rounds 3] [--duration 5]
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile

import string_io
from string_io import REPO, Server, log, run, wait_for_quiet, wrk, write_body

CASES = ("none", "print", "fd")


def build(rev, cache, folder):
    bin_dir, label = string_io.build(rev, cache, folder)
    return os.path.join(bin_dir, "server", "cog-server"), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="5567da3", help="the commit to compare with")
    parser.add_argument("--rev", help="measure this commit instead of the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5, help="seconds of wrk per case and round")
    parser.add_argument("--quiet-wait", type=float, default=30)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run scripts/setup.sh")
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "cog-bench")
    run(["./scripts/setup.sh"], cwd=REPO)
    binaries = {"baseline": build(args.baseline, cache, "tree-baseline"),
                "this": build(args.rev, cache, "tree")}
    workdir = tempfile.mkdtemp(prefix="cog-log-capture-")
    bodies = {case: write_body(workdir, case, {"input": {"s": "one line of log", "mode": case}})[0]
              for case in CASES}
    p50s = {(which, case): [] for which in binaries for case in CASES}
    rps = {(which, case): [] for which in binaries for case in CASES}
    try:
        for round_number in range(args.rounds):
            for which, (binary, _) in binaries.items():
                server = Server(binary, "log_one", workdir)
                try:
                    for case in CASES:
                        status, response = server.request("POST", "/predictions", open(bodies[case], "rb").read())
                        logs = json.loads(response).get("logs")
                        if status != 200:
                            raise SystemExit(f"{which} {case}: HTTP {status} {response[:200]!r}")
                        log(f"round {round_number + 1}, {which}, {case}: logs {logs!r}")
                        wait_for_quiet(args.quiet_wait)
                        wrk(server.port, bodies[case], 1, 1)
                        result = wrk(server.port, bodies[case], args.duration, 1)
                        p50s[(which, case)].append(result["p50"] * 1e3)
                        rps[(which, case)].append(result["rps"])
                finally:
                    server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    for which, (_, label) in binaries.items():
        print(f"{which}: {label}")
    print(f"wrk -t1 -c1, {args.duration:g} s per case, {args.rounds} rounds interleaved; "
          "median over rounds (min–max)")
    print()
    print("| case | baseline p50 µs | this p50 µs | difference µs | baseline req/s | this req/s |")
    print("|---|---|---|---|---|---|")

    def spread(values):
        return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"

    for case in CASES:
        base, this = p50s[("baseline", case)], p50s[("this", case)]
        print(f"| {case} | {spread(base)} | {spread(this)} | "
              f"{statistics.median(this) - statistics.median(base):+.0f} | "
              f"{statistics.median(rps[('baseline', case)]):.0f} | {statistics.median(rps[('this', case)]):.0f} |")


if __name__ == "__main__":
    main()
