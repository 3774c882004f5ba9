"""Two predictions at once on one event loop, each printing its own lines while
the other prints too, and both writing to fd 1, which neither owns."""

import asyncio
import os

from cog import BasePredictor

started = 0


class Predictor(BasePredictor):
    async def setup(self) -> None:
        self.both = asyncio.Event()

    async def predict(self, tag: str) -> str:
        global started
        started += 1
        if started % 2 == 0:
            self.both.set()
        try:
            await asyncio.wait_for(self.both.wait(), 10)
        except asyncio.TimeoutError:
            pass
        for i in range(5):
            print("%s line %d" % (tag, i))
            os.write(1, ("%s fd line %d\n" % (tag, i)).encode())
            await asyncio.sleep(0.01)
        return tag
