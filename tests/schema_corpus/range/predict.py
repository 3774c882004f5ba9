# Must produce golden/openapi/range.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        int_ge: int = Input(ge=0),
        int_le: int = Input(le=10),
        int_ge_le: int = Input(ge=0, le=10),
        int_ge_le_wd: int = Input(default=5, ge=0, le=10),
        float_ge: float = Input(ge=2.71),
        float_le: float = Input(le=3.14),
        float_ge_le: float = Input(ge=2.71, le=3.14),
        float_ge_le_wd: float = Input(default=3.0, ge=2.71, le=3.14),
        float_ge_i: float = Input(ge=0),
        float_le_i: float = Input(le=10),
        float_ge_le_i: float = Input(ge=0, le=10),
        float_ge_le_i_wd: float = Input(default=5, ge=0, le=10),
    ) -> str:
        raise NotImplementedError  # only the signature matters here
