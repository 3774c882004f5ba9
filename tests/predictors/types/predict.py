from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(
        self,
        s: str = Input(description="A string"),
        i: int = Input(default=2, ge=0, le=10),
        f: float = Input(default=0.5),
        b: bool = Input(default=False),
    ) -> str:
        print(f"types: {type(s).__name__} {type(i).__name__} {type(f).__name__} {type(b).__name__}")
        return f"{s}|{i}|{f}|{b}"
