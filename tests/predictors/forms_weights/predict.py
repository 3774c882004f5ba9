from typing import Optional

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def setup(self, weights: Optional[Path] = None) -> None:
        self.weights = weights.read_text().strip() if weights else "none"

    def predict(self) -> str:
        return self.weights
