from cog import BaseModel, Input


class TrainingOutput(BaseModel):
    steps: int
    rate: float


def train(steps: int = Input(default=10, ge=1), rate: float = 0.1) -> TrainingOutput:
    print(f"training {steps} steps")
    return TrainingOutput(steps=steps, rate=rate)
