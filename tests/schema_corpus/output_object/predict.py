# Must produce golden/openapi/output_object.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Output(BaseModel):
    b: bool
    f: float
    i: int
    s: str
    path: Path
    secret: Secret


class Predictor(BasePredictor):
    def predict(self, b: bool, f: float, i: int, s: str, path: Path, secret: Secret) -> Output:
        raise NotImplementedError  # only the signature matters here
