# Lives in a subdirectory: cog.yaml says src/model.py, imported as src.model.
from cog import BasePredictor, ConcatenateIterator, Input


class Predictor(BasePredictor):
    def predict(self, prompt: str = Input(default="a b c")) -> ConcatenateIterator[str]:
        for word in prompt.split():
            yield word + " "
