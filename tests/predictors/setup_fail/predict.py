from cog import BasePredictor


class Predictor(BasePredictor):
    def setup(self) -> None:
        print("setting up")
        raise RuntimeError("setup boom")

    def predict(self, s: str) -> str:
        return s
