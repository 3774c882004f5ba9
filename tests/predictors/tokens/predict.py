# Yields short tokens as fast as it can, for up to `seconds`: the path of a
# fast generator whose items the runner holds and sends in batches.
import time
from typing import Iterator

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, seconds: float = 60.0) -> Iterator[str]:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            yield "tok%d " % i
            i += 1
