# Must produce golden/openapi/legacy-null.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, s: str) -> str:
        raise NotImplementedError  # only the signature matters here
