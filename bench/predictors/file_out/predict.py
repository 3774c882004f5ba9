# A `Path` output of `size` bytes, written once and returned by every
# prediction: what is measured is the server's work on the file.
import os
import tempfile

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.files = {}

    def predict(self, size: int = 10 << 20) -> Path:
        path = self.files.get(size)
        if path is None:
            path = os.path.join(tempfile.mkdtemp(), "out.bin")
            with open(path, "wb") as f:
                f.write(bytes((i * 7919 + 13) % 251 for i in range(256)) * (size // 256))
            self.files[size] = path
        return Path(path)
