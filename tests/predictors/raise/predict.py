from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, s: str) -> str:
        print("about to fail")
        if s == "ok":
            return "fine"
        raise ValueError("boom: " + s)
