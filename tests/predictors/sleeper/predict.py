# Sleeps for `seconds` (long by default), so tests can cancel it mid-way.
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, seconds: float = 600.0) -> str:
        print("sleeping")
        time.sleep(seconds)
        return "woke up"
