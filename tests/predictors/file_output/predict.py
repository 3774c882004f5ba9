import os
import tempfile
from typing import Iterator

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def predict(self, text: str, mode: str = "single", size: int = 0) -> Iterator[Path]:
        directory = tempfile.mkdtemp()
        if mode == "missing":
            yield Path(os.path.join(directory, "never-written.txt"))
            return
        for i in range(2 if mode == "two" else 1):
            path = Path(os.path.join(directory, f"out {i}.txt"))
            path.write_bytes(os.urandom(size) if size else f"{text} {i}".encode())
            yield path
