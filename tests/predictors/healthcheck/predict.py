# healthcheck() follows files in the model directory: "sick" makes it raise
# with the file's text, "hang" makes it wait until that file is gone.
import os
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str = "ok") -> str:
        return s

    def healthcheck(self) -> bool:
        while os.path.exists("hang"):
            time.sleep(0.01)
        if os.path.exists("sick"):
            with open("sick") as f:
                raise RuntimeError(f.read())
        return True
