# An async predictor serving up to 4 predictions at once (cog.yaml).
# Each waits until the file named by its `gate` input exists, so a test can hold
# several open together without sleeping.
import asyncio
import os

from cog import BasePredictor


class Predictor(BasePredictor):
    async def setup(self) -> None:
        await asyncio.sleep(0)

    async def predict(self, name: str, gate: str = "") -> str:
        print(f"start {name}")
        if gate:
            open(f"{gate}.{name}.started", "w").close()  # the test sees who is inside predict()
        while gate and not os.path.exists(gate):
            await asyncio.sleep(0.01)
        print(f"end {name}")
        return name

    def healthcheck(self) -> bool:
        return True
