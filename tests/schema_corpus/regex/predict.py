# Must produce golden/openapi/regex.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        r: str = Input(regex="https://.*"),
        r_wd: str = Input(default="https://replicate.com", regex="https://.*"),
    ) -> str:
        raise NotImplementedError  # only the signature matters here
