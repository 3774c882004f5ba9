# Returns the size of its Path input: what a large data: URI costs the server, not its answer.
import os
from cog import BasePredictor, Path

class Predictor(BasePredictor):
    def predict(self, image: Path) -> int:
        return os.path.getsize(image)
