# Returns its input: the null predictor with a short `s`, 1 MiB in and out with a long one.
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str) -> str:
        return s
