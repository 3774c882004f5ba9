# Breaks the runner in the way `fault` names, for the fault matrix
# (tests/e2e_fault_test.py); "none" answers "ok". A fault that waits for the
# test ("wait", "ignore_cancel") first creates the file "<fault>.ready" in the
# model directory (the runner's working directory).
import ctypes
import gc
import os
import signal
import time

from cog import BasePredictor


def runner_socket_fd() -> int:
    """The runner's connection to cog-server (cog_runner.connection.Connection)."""
    connections = [o for o in gc.get_objects()
                   if type(o).__name__ == "Connection" and type(o).__module__ == "cog_runner.connection"]
    assert len(connections) == 1, connections
    return connections[0].fileno()


class Predictor(BasePredictor):
    def setup(self) -> None:
        print("setup in pid %d" % os.getpid())

    def predict(self, fault: str = "none") -> str:
        print("started in pid %d" % os.getpid())
        if fault == "exit":
            os._exit(3)
        elif fault == "segfault":
            ctypes.string_at(0)
        elif fault == "wait":  # until the test kills the runner from outside
            open("wait.ready", "w").close()
            time.sleep(3600)
        elif fault == "close_socket":  # and keep running, deaf to SIGTERM
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.close(runner_socket_fd())
            time.sleep(3600)
        elif fault == "ignore_cancel":  # the runner cancels with SIGIO
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
            open("ignore_cancel.ready", "w").close()
            time.sleep(3600)
        elif fault == "garbage":  # bytes that are no frame, then an honest answer
            os.write(runner_socket_fd(), b"\xde\xad\xbe\xef" * 64)
        elif fault == "garbage_frame":  # a frame in step whose bytes are no message
            os.write(runner_socket_fd(), b"\x00\x00\x00\x08" + b"\xff" * 8)
        return "ok"
