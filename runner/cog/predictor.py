"""BasePredictor: the class a model's Predictor inherits."""

from typing import Any, Optional


class BasePredictor:
    """Override setup() to load the model once, and predict() to run it."""

    def setup(self, weights: Optional[Any] = None) -> None:
        """Called once before the first prediction."""

    def predict(self, **kwargs: Any) -> Any:
        raise NotImplementedError("predict() must be implemented by the Predictor")
