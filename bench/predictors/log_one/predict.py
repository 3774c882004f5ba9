"""A null predictor that writes one log line per prediction, or none: through
Python's sys.stdout (print) or below it, on fd 1 (as a C extension or a
subprocess does)."""

import os

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str, mode: str = "none") -> str:
        if mode == "print":
            print(s)
        elif mode == "fd":
            os.write(1, s.encode() + b"\n")
        return s
