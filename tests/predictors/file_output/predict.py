import os
import tempfile
from typing import Iterator

from cog import BasePredictor, Path


def binary(size: int) -> bytes:
    """Deterministic bytes no file-type signature matches (random ones sometimes do)."""
    return bytes((i * 7919 + 13) % 251 for i in range(256)) * (size // 256)


class Predictor(BasePredictor):
    def predict(self, text: str, mode: str = "single", size: int = 0) -> Iterator[Path]:
        directory = tempfile.mkdtemp()
        if mode == "missing":
            yield Path(os.path.join(directory, "never-written.txt"))
            return
        if mode == "same":  # one file, returned twice
            path = Path(os.path.join(directory, "same.txt"))
            path.write_bytes(text.encode())
            yield path
            yield path
            return
        for i in range(2 if mode == "two" else 1):
            path = Path(os.path.join(directory, f"out {i}.txt"))
            path.write_bytes(binary(size) if size else f"{text} {i}".encode())
            yield path
