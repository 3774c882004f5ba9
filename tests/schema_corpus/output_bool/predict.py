# Must produce golden/openapi/output_bool.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, x: bool, y: bool) -> bool:
        raise NotImplementedError  # only the signature matters here
