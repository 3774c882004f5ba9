# Must produce golden/openapi/legacy-constraints.json exactly; legacy_compat_test
# also serves it, and its output is the legacy capture's.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Text prompt", min_length=1, max_length=100),
        n: int = Input(description="Number of outputs", default=1, ge=1, le=10),
        temperature: float = Input(description="Sampling temperature", default=0.7, ge=0, le=2),
        mode: str = Input(description="Speed mode", default="fast", choices=["fast", "slow"]),
        size: int = Input(description="Image size", default=512, choices=[256, 512, 1024]),
        tag: str = Input(description="Lowercase tag", default="abc", regex="^[a-z]+$"),
        seed: Optional[int] = Input(description="Random seed", default=None),
        flag: bool = Input(description="A flag", default=False),
        image: Optional[Path] = Input(description="Optional input file", default=None),
        api_key: Optional[Secret] = Input(description="A secret", default=None),
    ) -> str:
        return "|".join(str(v) for v in (prompt, n, temperature, mode, size, tag, seed, flag, image is not None))
