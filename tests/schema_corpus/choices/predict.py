# Must produce golden/openapi/choices.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        i: int = Input(choices=[0, 1, 2]),
        i_wd: int = Input(default=0, choices=[0, 1, 2]),
        s: str = Input(choices=["foo", "bar"]),
        s_wd: str = Input(default="foo", choices=["foo", "bar"]),
    ) -> str:
        raise NotImplementedError  # only the signature matters here
