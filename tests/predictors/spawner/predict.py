# Starts processes that try to outlive the runner and the server, for
# tests/e2e_process_hygiene_test.py: a child in the runner's process group, a
# child in a session of its own (setsid), and a daemon (double fork + setsid)
# whose parents exit at once, so that it is an orphan. Returns their pids.
import os
import subprocess
import sys
from typing import List

from cog import BasePredictor

DAEMON = """
import os, sys
report = int(sys.argv[1])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(report, str(os.getpid()).encode())
        os.close(report)
        os.execvp("sleep", ["sleep", "3600"])
os._exit(0)
"""


class Predictor(BasePredictor):
    def predict(self) -> List[int]:
        same_group = subprocess.Popen(["sleep", "3600"])
        own_session = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        read, write = os.pipe()
        launcher = subprocess.Popen([sys.executable, "-c", DAEMON, str(write)], pass_fds=[write])
        os.close(write)
        daemon = int(os.read(read, 32))
        os.close(read)
        launcher.wait()
        return [same_group.pid, own_session.pid, daemon]
