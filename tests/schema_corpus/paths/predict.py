# Must produce golden/openapi/paths.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        p1: Path,
        p2: Path = Path("bar.txt"),
        p3: Path = Input(default=Path("baz.txt")),
        ps: List[Path] = Input(default=[Path("bar123.txt"), Path("baz123.txt")]),
    ) -> List[Path]:
        raise NotImplementedError  # only the signature matters here
