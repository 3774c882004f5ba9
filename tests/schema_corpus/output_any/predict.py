# Must produce golden/openapi/output_any.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, x: int) -> Any:
        raise NotImplementedError  # only the signature matters here
