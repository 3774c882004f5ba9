# Must produce golden/openapi/enums.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, c: str = Input(default="red", choices=["red", "green", "blue"]),
                n: float = 2.71828) -> str:
        raise NotImplementedError  # only the signature matters here
