from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.greeting = "hello"

    def predict(self, text: str = Input(description="Who to greet")) -> str:
        return f"{self.greeting} {text}"
