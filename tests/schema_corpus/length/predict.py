# Must produce golden/openapi/length.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        s_min: str = Input(min_length=5),
        s_max: str = Input(max_length=10),
        s_min_max: str = Input(min_length=5, max_length=10),
        s_min_max_wd: str = Input(default="foobar", min_length=5, max_length=10),
    ) -> str:
        raise NotImplementedError  # only the signature matters here
