from cog import BasePredictor, Input


class Predictor(BasePredictor):
    # What `python3 -m cog_runner test examples/hello` predicts on.
    test_inputs = {"text": "world"}

    def setup(self) -> None:
        self.greeting = "hello"

    def predict(self, text: str = Input(description="Who to greet")) -> str:
        return f"{self.greeting} {text}"
