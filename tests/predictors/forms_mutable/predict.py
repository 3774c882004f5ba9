from typing import List

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, xs: List[int] = Input(default=[1]), ys: List[int] = Input(default_factory=list)) -> str:
        xs.append(0)  # must not leak into the next prediction's default
        ys.append(0)
        return f"{len(xs)} {len(ys)}"
