# Yields `first` items at once, then waits for the file `gate` (the test makes
# it once a client has seen them all), then yields "last". A first item held
# back by the runner is never seen, the gate never made: the prediction fails.
import os
import time
from typing import Iterator

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, gate: str, first: int = 1) -> Iterator[str]:
        for i in range(first):
            yield "item%d" % i
        deadline = time.monotonic() + 30
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError("no client saw the first items within 30 s")
            time.sleep(0.005)
        yield "last"
