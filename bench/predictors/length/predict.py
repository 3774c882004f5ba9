# A long string in, a number out: what reading a large request costs.
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str) -> int:
        return len(s)
