# An async predictor whose predictions end in exceptions that are not
# Exceptions (sys.exit(), KeyboardInterrupt, one of the model's own), while
# others sleep beside them on the same event loop.
import asyncio
import sys


class ModelStopped(BaseException):
    pass


from cog import BasePredictor  # noqa: E402


class Predictor(BasePredictor):
    async def predict(self, mode: str, seconds: float = 0.0) -> str:
        await asyncio.sleep(seconds)
        if mode == "exit":
            sys.exit(3)
        if mode == "interrupt":
            raise KeyboardInterrupt
        if mode == "own":
            raise ModelStopped("the model's own BaseException")
        return "slept"
