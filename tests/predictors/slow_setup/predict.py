# setup() waits until the test creates the file named by COG_TEST_RELEASE, so
# the test can observe STARTING without sleeping.
import os
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def setup(self) -> None:
        print("setup starting")
        release = os.environ["COG_TEST_RELEASE"]
        while not os.path.exists(release):
            time.sleep(0.01)
        print("setup done")

    def predict(self, s: str) -> str:
        return s
