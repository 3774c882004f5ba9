# The null predictor: the cheapest prediction there is.
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str) -> str:
        return s
