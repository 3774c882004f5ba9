"""The `cog` package a predictor imports: `from cog import BasePredictor, Input, Path`.

Standard library only. Source-compatible with Cog's Python interface.
"""

from .predictor import BasePredictor
from .scope import current_scope, emit_metric
from .server.exceptions import CancelationException
from .types import (
    AsyncConcatenateIterator,
    BaseModel,
    ConcatenateIterator,
    Input,
    Path,
    Secret,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncConcatenateIterator",
    "BaseModel",
    "BasePredictor",
    "CancelationException",
    "ConcatenateIterator",
    "Input",
    "Path",
    "Secret",
    "__version__",
    "current_scope",
    "emit_metric",
]


def __getattr__(name):
    if name == "File":
        raise ImportError(
            "cog.File was removed: use cog.Path instead "
            "(from cog import Path; def predict(self, image: Path) -> Path)"
        )
    raise AttributeError("module 'cog' has no attribute %r" % name)
