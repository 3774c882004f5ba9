# The generator of bench/predictors/gen as an async generator, up to 8
# predictions at once on the runner's event loop: `n` short items, each the
# wall-clock time (ns) it was yielded at, as fast as it can.
import time
from typing import AsyncIterator

from cog import BasePredictor


class Predictor(BasePredictor):
    async def predict(self, n: int = 100) -> AsyncIterator[str]:
        for _ in range(n):
            yield str(time.time_ns())
