from dataclasses import dataclass
from typing import Dict, List, Optional

from cog import BaseModel, BasePredictor, Input, Secret


@dataclass
class Box:
    w: int
    h: int


class Size(BaseModel):
    area: int
    label: str


class Output(BaseModel):
    sizes: List[Size]
    key_length: int
    shown_key: Secret
    tags: Dict[str, int]
    note: Optional[str] = None


class Predictor(BasePredictor):
    def predict(self, boxes: List[Box], api_key: Secret, tags: Dict[str, int] = Input(default_factory=dict),
                note: Optional[str] = None) -> Output:
        assert all(isinstance(b, Box) for b in boxes), boxes
        return Output(sizes=[Size(area=b.w * b.h, label=f"{b.w}x{b.h}") for b in boxes],
                      key_length=len(api_key.get_secret_value()), shown_key=api_key, tags=tags, note=note)
