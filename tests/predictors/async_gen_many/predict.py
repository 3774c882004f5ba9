# An async generator of short str items, several predictions at once: the
# runner may hold a sync prediction's items and send them several to a frame
# while other predictions' items come between them.
import asyncio
from typing import AsyncIterator

from cog import BasePredictor


class Predictor(BasePredictor):
    async def predict(self, tag: str, n: int) -> AsyncIterator[str]:
        for i in range(n):
            if i % 7 == 0:
                await asyncio.sleep(0)  # lets the other predictions' items in
            yield f"{tag}-{i}"
        yield f"{tag} é ✓ 😀 \"end\"\n"
