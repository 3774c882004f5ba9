# Must produce golden/openapi/output_concat_iter.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, xs: List[str]) -> ConcatenateIterator[str]:
        raise NotImplementedError  # only the signature matters here
