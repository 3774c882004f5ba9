# Sleeps for `seconds` (long by default), or with spin=True busy-loops in pure
# Python printing all the while, so tests can cancel it mid-way either way.
# `padding` is not used: a long one makes the Predict frame large.
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, seconds: float = 600.0, spin: bool = False, padding: str = "") -> str:
        print("sleeping")
        deadline = time.monotonic() + seconds
        if spin:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                if i % 100 == 0:
                    print(f"spin {i}")
        else:
            time.sleep(seconds)
        return "woke up"
