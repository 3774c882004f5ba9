"""Loading the predictor named in cog.yaml ("predict.py:Predictor")."""

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .schema import check_setup, check_takes_self


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
        if not hasattr(obj, method):
            raise AttributeError("%s has no %s() method" % (ref, method))
        # A staticmethod takes no instance; anything else defined on the class does.
        is_method = not isinstance(inspect.getattr_static(obj, method), (staticmethod, classmethod))
        signature_source = unwrap(getattr(obj, method))
        if is_method:
            check_takes_self(signature_source, obj.__name__, method)
        setup = getattr(obj, "setup", None)
        if setup is not None:
            check_setup(unwrap(setup), obj.__name__)
        instance = obj()
        return LoadedPredictor(
            predict=getattr(instance, method),
            setup=getattr(instance, "setup", None),
            healthcheck=getattr(instance, "healthcheck", None),
            signature_source=signature_source,
            is_method=is_method,
        )
    if callable(obj):
        return LoadedPredictor(predict=obj, setup=None, healthcheck=None, signature_source=unwrap(obj),
                               is_method=False)
    raise TypeError("%s is neither a class nor a function" % ref)


def unwrap(fn: Any) -> Any:
    """The function a decorator wraps, through any number of decorators: the
    `__wrapped__` functools.wraps leaves, else, for a wrapper that takes only
    *args/**kwargs, the one function its closure holds (as upstream Cog
    runtimes look through `def wrapper(*args, **kwargs)`)."""
    seen = set()
    while id(fn) not in seen:
        seen.add(id(fn))
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            inner = _closure_function(fn)
        if inner is None or not callable(inner):
            break
        fn = inner
    return fn


def _closure_function(fn: Any) -> Optional[Callable[..., Any]]:
    function = getattr(fn, "__func__", fn)
    closure = getattr(function, "__closure__", None)
    if not closure or not inspect.isfunction(function):
        return None
    parameters = inspect.signature(function, follow_wrapped=False).parameters.values()
    if any(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")
           for p in parameters):
        return None  # a wrapper with a signature of its own: that is the signature
    candidates = []
    for cell in closure:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if inspect.isfunction(value) or inspect.ismethod(value):
            candidates.append(value)
    named = [c for c in candidates if c.__name__ == function.__name__]
    if len(named) == 1:
        return named[0]
    return candidates[0] if len(candidates) == 1 else None
