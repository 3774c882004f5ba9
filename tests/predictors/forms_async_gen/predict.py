import asyncio
from typing import AsyncIterator

from cog import BasePredictor


class Predictor(BasePredictor):
    async def predict(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"item{i}"
