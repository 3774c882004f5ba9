"""Writes its logs every way a model does: print, logging, os.write to fds 1
and 2, a subprocess, and libc's printf (as a C extension would)."""

import ctypes
import logging
import os
import subprocess
import sys
import threading
import time

from cog import BasePredictor

LIBC = ctypes.CDLL(None)


def write_every_way(tag: str) -> None:
    print("%s print" % tag)
    logging.getLogger("model").warning("%s logging", tag)
    os.write(1, ("%s fd1\n" % tag).encode())
    os.write(2, ("%s fd2\n" % tag).encode())
    subprocess.run(["echo", "%s subprocess" % tag], check=True)
    subprocess.run("echo '%s subprocess stderr' >&2" % tag, shell=True, check=True)
    LIBC.printf(("%s printf\n" % tag).encode())
    sys.stdout.buffer.write(("%s stdout.buffer\n" % tag).encode())
    LIBC.printf(("%s printf without a line end" % tag).encode())


class Predictor(BasePredictor):
    def setup(self) -> None:
        write_every_way("setup")

    def predict(self, tag: str, mode: str = "every") -> str:
        if mode == "every":
            write_every_way(tag)
        elif mode == "garbage":
            # Bytes that are no UTF-8 and no lines, a megabyte of them, then progress bars.
            os.write(1, bytes(range(256)) * 4096)
            os.write(1, b"\n")
            for i in range(2000):
                os.write(2, b"\r%d%%" % i)
            os.write(2, b"\n")
        elif mode == "stray":
            # Output after the prediction has ended belongs to no prediction.
            def later() -> None:
                time.sleep(0.3)
                os.write(1, ("%s stray after the end\n" % tag).encode())
                os.write(1, b"\x1b[31m\xff\xfe raw bytes {\"not\": json\n")
            threading.Thread(target=later).start()
        return tag
