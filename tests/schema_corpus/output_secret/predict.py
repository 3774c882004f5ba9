# Must produce golden/openapi/output_secret.json exactly.
from typing import Any, Iterator, List, Optional

from cog import BaseModel, BasePredictor, ConcatenateIterator, Input, Path, Secret


class Predictor(BasePredictor):
    def predict(self, x: Secret) -> Secret:
        raise NotImplementedError  # only the signature matters here
