import asyncio

from cog import BasePredictor


class Predictor(BasePredictor):
    async def setup(self) -> None:
        await asyncio.sleep(0)
        self.factor = 3

    async def predict(self, n: int) -> int:
        await asyncio.sleep(0)
        print("async predict")
        return n * self.factor
