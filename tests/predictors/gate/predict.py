# Waits until the file `gate` exists, so that a test decides when the
# prediction ends (no sleeps in the test itself).
import os
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, gate: str, text: str = "done") -> str:
        print("waiting at the gate")
        while not os.path.exists(gate):
            time.sleep(0.005)
        return text
