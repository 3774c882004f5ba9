# hostile_outputs' generators as async generators, run several at once on the
# runner's event loop: str items of every shape and length around the limit
# for sharing a frame, other items between them, an exception after a run of
# items, a stream to cancel, and one without end.
import asyncio
from typing import Any, AsyncIterator

from cog import BasePredictor

TEXTS = ['"quoted"', "back\\slash", "new\nline", "\x01\x1f\x7f", "é ✓ 😀", "x" * 256, "y" * 257, ""]


async def _texts(n: int) -> AsyncIterator[Any]:
    for text in TEXTS:
        yield text
    yield 1
    yield None
    yield {"a": "b"}
    print("a print between items")
    for i in range(n):
        if i % 500 == 0:
            await asyncio.sleep(0)  # lets the other predictions in
        yield "t%d" % i
    await asyncio.sleep(0.06)  # longer than the runner holds items
    yield "after a pause"


async def _texts_then_raise(n: int) -> AsyncIterator[str]:
    for i in range(n):
        yield "t%d" % i
    raise ValueError("the model's own error after %d items" % n)


async def _paced(n: int) -> AsyncIterator[str]:
    yielded = 0
    try:
        for i in range(n):
            yield "t%d" % i
            yielded += 1
            if i % 10 == 9:
                await asyncio.sleep(0.01)  # where a cancel lands
    finally:
        print("yielded %d items" % yielded)


async def _endless() -> AsyncIterator[str]:
    i = 0
    while True:  # a model that never stops yielding, but awaits now and then
        yield "token"
        i += 1
        if i % 1000 == 0:
            await asyncio.sleep(0)


async def _one(item: str) -> AsyncIterator[str]:
    yield item


GENERATORS = {"texts": _texts, "texts_then_raise": _texts_then_raise, "paced": _paced}


class Predictor(BasePredictor):
    async def predict(self, kind: str, n: int = 0) -> AsyncIterator[Any]:
        if kind == "endless":
            items = _endless()
        elif kind in GENERATORS:
            items = GENERATORS[kind](n)
        else:
            items = _one(kind)
        async for item in items:
            yield item
