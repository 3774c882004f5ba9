# Must produce golden/openapi/descriptions.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        b: bool = Input(description="boolean field"),
        f: float = Input(description="float field"),
        i: int = Input(description="integer field"),
        s: str = Input(description="string field"),
        p: Path = Input(description="path field"),
    ) -> str:
        raise NotImplementedError  # only the signature matters here
