# Must produce golden/openapi/output_float.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, x: float, y: float) -> str:
        raise NotImplementedError  # only the signature matters here
