# Prints `n` lines (a chatty model's progress output) and returns how many
# seconds the printing took inside predict(), so that the server's share of
# the time to answer can be told apart.
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, n: int = 80000) -> float:
        start = time.perf_counter()
        for i in range(n):
            print(f"line {i}")
        return time.perf_counter() - start
