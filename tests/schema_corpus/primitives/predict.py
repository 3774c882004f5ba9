# Must produce golden/openapi/primitives.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, b: bool, f: float, i: int, s: str) -> str:
        raise NotImplementedError  # only the signature matters here
