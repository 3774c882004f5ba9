# Must produce golden/openapi/secret.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        s1: Secret,
        s2: Secret = Secret("bar"),
        s3: Secret = Input(default="baz"),
        ss: List[Secret] = Input(default=["bar123", Secret("baz123")]),
    ) -> List[Secret]:
        raise NotImplementedError  # only the signature matters here
