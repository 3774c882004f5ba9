"""Loading the predictor named in cog.yaml ("predict.py:Predictor")."""

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class LoadedPredictor:
    """What the runner calls: predict (bound when a class), and setup if any."""

    predict: Callable[..., Any]
    setup: Optional[Callable[..., Any]]
    healthcheck: Optional[Callable[..., Any]]
    # The unbound function whose signature is the schema, and whether it takes self.
    signature_source: Callable[..., Any]
    is_method: bool


def import_object(ref: str, working_directory: str) -> Any:
    """Imports "path/to/file.py:Name" with the working directory on sys.path."""
    if ":" not in ref:
        raise ValueError("%r must name a file and an object in it, like predict.py:Predictor" % ref)
    path, name = ref.rsplit(":", 1)
    if working_directory not in sys.path:
        sys.path.insert(0, working_directory)
    module_path = path[:-3] if path.endswith(".py") else path
    module_name = module_path.strip("/").replace(os.sep, ".")
    if not os.path.exists(os.path.join(working_directory, module_path + ".py")) and not os.path.isdir(
            os.path.join(working_directory, module_path)):
        raise FileNotFoundError("%s does not exist in %s" % (path, working_directory))
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        raise AttributeError("%s has no %r: check the name in cog.yaml" % (path, name))
    return getattr(module, name)


def load(ref: str, working_directory: str, method: str = "predict") -> LoadedPredictor:
    obj = import_object(ref, working_directory)
    if inspect.isclass(obj):
        instance = obj()
        if not hasattr(instance, method):
            raise AttributeError("%s has no %s() method" % (ref, method))
        return LoadedPredictor(
            predict=getattr(instance, method),
            setup=getattr(instance, "setup", None),
            healthcheck=getattr(instance, "healthcheck", None),
            signature_source=getattr(obj, method),
            is_method=True,
        )
    if callable(obj):
        return LoadedPredictor(predict=obj, setup=None, healthcheck=None, signature_source=obj,
                               is_method=False)
    raise TypeError("%s is neither a class nor a function" % ref)
