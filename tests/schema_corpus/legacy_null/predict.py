# Must produce golden/openapi/legacy-null.json exactly; legacy_compat_test also
# serves it, replaying the legacy server's captured exchanges.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, s: str) -> str:
        return s
