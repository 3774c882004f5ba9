# A short input, a long string out: `unit` repeated to `n` characters. Built
# once per (unit, n) and kept, so that a request costs the server's work, not
# the building of the string.
from typing import Dict, Tuple

from cog import BasePredictor


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.texts: Dict[Tuple[str, int], str] = {}

    def predict(self, unit: str, n: int) -> str:
        text = self.texts.get((unit, n))
        if text is None:
            text = (unit * (n // max(len(unit), 1) + 1))[:n]
            self.texts = {(unit, n): text}
        return text
