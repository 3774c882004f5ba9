import sys
from typing import Iterator

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, n: int) -> Iterator[str]:
        for i in range(n):
            print(f"log line {i}")
            print(f"stderr line {i}", file=sys.stderr)
            yield f"chunk{i}"
