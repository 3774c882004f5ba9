# A generator: `n` short items, each the wall-clock time (ns) it was yielded at,
# so that a streaming client can tell how long each took to reach it.
import time
from typing import Iterator

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, n: int = 100) -> Iterator[str]:
        for _ in range(n):
            yield str(time.time_ns())
