# Must produce golden/openapi/defaults.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, b: bool = False, f: float = 0.0, i: int = 0, s: str = "foo",
                p: Path = Path("foo.txt")) -> str:
        raise NotImplementedError  # only the signature matters here
