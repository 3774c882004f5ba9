import json
import os
from dataclasses import dataclass
from typing import List, Optional

from cog import BasePredictor, Path


@dataclass
class Pair:
    a: Path
    b: List[Path]


def seen(path: Path) -> dict:
    return {"type": type(path).__name__, "path": str(path), "name": os.path.basename(path),
            "content": path.read_bytes().decode("latin-1")}


class Predictor(BasePredictor):
    def predict(self, image: Path, images: Optional[List[Path]] = None, pair: Optional[Pair] = None,
                link: str = "") -> str:
        return json.dumps({
            "image": seen(image),
            "images": [seen(p) for p in images or []],
            "pair": {"a": seen(pair.a), "b": [seen(p) for p in pair.b]} if pair else None,
            "link": link,
        })
