# Must produce golden/openapi/output_int.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, x: int, y: int) -> int:
        raise NotImplementedError  # only the signature matters here
