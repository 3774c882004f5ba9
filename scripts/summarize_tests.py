"""Counts test cases in Bazel's test logs (GoogleTest and unittest) of the given
test targets and prints one line per target and a final "N passed, N failed".

  summarize_tests.py bazel-testlogs //server:frame_io_test //tests:e2e_rest_test ...
"""

import os
import re
import sys


def count(log: str):
    """(passed, failed) test cases in one target's log."""
    passed = failed = 0
    gtest_passed = re.findall(r"^\[  PASSED  \] (\d+) tests?", log, re.M)
    gtest_failed = re.findall(r"^\[  FAILED  \] (\d+) tests?, listed below", log, re.M)
    if gtest_passed or gtest_failed:
        passed = sum(map(int, gtest_passed))
        failed = sum(map(int, gtest_failed))
        return passed, failed
    for ran, tail in re.findall(r"^Ran (\d+) tests? in [\d.]+s\n\n(.*)$", log, re.M):
        bad = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", tail))
        failed += bad
        passed += int(ran) - bad - sum(int(n) for n in re.findall(r"skipped=(\d+)", tail))
    return passed, failed


def main(root: str, targets) -> int:
    total_passed = total_failed = 0
    rows = []
    for target in targets:
        directory = os.path.join(root, target.lstrip("/").replace(":", "/"))
        # One test.log, or one per run or shard (run_1_of_5/, shard_1_of_2/).
        paths = [os.path.join(directory, "test.log")]
        if not os.path.exists(paths[0]) and os.path.isdir(directory):
            paths = sorted(os.path.join(directory, d, "test.log") for d in os.listdir(directory)
                           if os.path.isfile(os.path.join(directory, d, "test.log")))
        log = ""
        for path in paths:
            try:
                with open(path, errors="replace") as f:
                    log += f.read() + "\n"
            except OSError:
                pass
        passed, failed = count(log)
        if passed == failed == 0:
            failed = 1  # a target that ran nothing, or crashed before reporting
        rows.append("%-45s %4d passed, %d failed" % (target, passed, failed))
        total_passed += passed
        total_failed += failed
    print("\nTest cases by target:")
    print("\n".join(rows))
    print("%d passed, %d failed" % (total_passed, total_failed))
    return 1 if total_failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
