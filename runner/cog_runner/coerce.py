"""Turning validated JSON input into what a predictor's signature asks for.

The server has already checked types and filled defaults; here JSON values
become cog.Path, cog.Secret, dataclass instances, and `default_factory`
defaults are made afresh for every prediction, so that one prediction can
never see what another did to a mutable default.
"""

import dataclasses
import inspect
import os
import typing
from typing import Any, Callable, Dict

import cog
from cog.types import FieldInfo, Secret

from .schema import strip_optional

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def converter_for(annotation: Any) -> Converter:
    """A function from the JSON value to the value the annotation asks for."""
    inner, _ = strip_optional(annotation, "input")
    if inspect.isclass(inner) and issubclass(inner, Secret):
        return lambda v: None if v is None else (v if isinstance(v, Secret) else Secret(v))
    if inspect.isclass(inner) and issubclass(inner, os.PathLike):
        wrap = cog.Path if inner in (os.PathLike,) or issubclass(cog.Path, inner) else inner
        return lambda v: None if v is None else wrap(v)
    origin = typing.get_origin(inner)
    args = typing.get_args(inner)
    if (inner is list or origin is list) and args:
        item = converter_for(args[0])
        if item is _identity:
            return _identity
        return lambda v: None if v is None else [item(x) for x in v]
    if (inner is dict or origin is dict) and len(args) == 2:
        value = converter_for(args[1])
        if value is _identity:
            return _identity
        return lambda v: None if v is None else {k: value(x) for k, x in v.items()}
    if inspect.isclass(inner) and dataclasses.is_dataclass(inner):
        hints = typing.get_type_hints(inner)
        fields = {f.name: converter_for(hints[f.name]) for f in dataclasses.fields(inner)}
        return lambda v: None if v is None else inner(**{k: fields[k](x) if k in fields else x
                                                        for k, x in v.items()})
    return _identity


def input_converters(fn: Callable[..., Any]) -> Dict[str, Converter]:
    """For each input of fn that needs it, the converter from its JSON value."""
    hints = typing.get_type_hints(fn)
    converters: Dict[str, Converter] = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name not in hints:
            continue
        convert = converter_for(hints[name])
        default = parameter.default
        if isinstance(default, FieldInfo) and default.default_factory is not None:
            factory = default.default_factory
            convert = (lambda v, c=convert, f=factory: f() if v is None else c(v))
        if convert is not _identity:
            converters[name] = convert
    return converters
