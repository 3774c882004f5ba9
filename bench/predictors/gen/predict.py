# A generator: `n` short items, each the wall-clock time (ns) it was yielded at,
# so that a streaming client can tell how long each took to reach it; `gap`
# seconds apart (a model's tokens), or as fast as it can.
import time
from typing import Iterator

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, n: int = 100, gap: float = 0.0) -> Iterator[str]:
        for i in range(n):
            if gap and i:
                time.sleep(gap)
            yield str(time.time_ns())
