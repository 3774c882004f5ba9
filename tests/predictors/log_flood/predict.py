# A model that prints far more than a slow client reads: `mb` MiB of 1 KiB
# lines written to fd 1 as fast as it can, then a short answer; as many in
# setup() as $LOG_FLOOD_SETUP_MB says.
import os

from cog import BasePredictor

BLOCK = (("x" * 1023 + "\n") * 1024).encode()  # 1 MiB


class Predictor(BasePredictor):
    def setup(self) -> None:
        for _ in range(int(os.environ.get("LOG_FLOOD_SETUP_MB", "0"))):
            os.write(1, BLOCK)

    def predict(self, mb: int) -> str:
        for _ in range(mb):
            os.write(1, BLOCK)
        return "done"
