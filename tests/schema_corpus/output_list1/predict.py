# Must produce golden/openapi/output_list1.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, xs: List[int]) -> List[int]:
        raise NotImplementedError  # only the signature matters here
