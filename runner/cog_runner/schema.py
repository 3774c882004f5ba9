"""The OpenAPI document of a predictor, derived with `inspect`, shaped as legacy Cog's.

Everything a model author can get wrong in a signature is caught here, when the
predictor loads, with a message that names the input and says what to write.
"""

import collections.abc
import dataclasses
import inspect
import json
import os
import re
import types
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from cog.types import _MISSING as MISSING
from cog.types import AsyncConcatenateIterator, ConcatenateIterator, FieldInfo, Secret

_ITERATORS = (collections.abc.Iterator, collections.abc.AsyncIterator, collections.abc.Generator,
              collections.abc.AsyncGenerator, collections.abc.Iterable, collections.abc.AsyncIterable)


class SchemaError(TypeError):
    """A signature the runtime cannot serve; the message says what to change."""


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _type_name(annotation: Any) -> str:
    if inspect.isclass(annotation) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Union or isinstance(annotation, getattr(types, "UnionType", ()))


def strip_optional(annotation: Any, where: str) -> Tuple[Any, bool]:
    """(T, True) for Optional[T], T | None and None | T; (T, False) otherwise."""
    if not _is_union(annotation):
        return annotation, False
    args = typing.get_args(annotation)
    rest = [a for a in args if a is not type(None)]
    if len(rest) == 1 and len(rest) < len(args):
        return rest[0], True
    raise SchemaError("%s: unions such as %s are not supported: use one type (or Optional[T])"
                      % (where, _type_name(annotation)))


def _is_pathlike(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, os.PathLike)


def _is_typed_dict(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, dict) and hasattr(annotation, "__annotations__") \
        and hasattr(annotation, "__total__")


def type_schema(annotation: Any, where: str) -> Dict[str, Any]:
    """The JSON schema of one (non-Optional) type."""
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is Any:
        return {}
    if inspect.isclass(annotation) and issubclass(annotation, Secret):
        return {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True}
    if _is_pathlike(annotation):
        return {"type": "string", "format": "uri"}
    if getattr(annotation, "__name__", "") == "File" and getattr(annotation, "__module__", "").startswith("cog"):
        raise SchemaError("%s: cog.File was removed: use cog.Path instead" % where)
    origin = typing.get_origin(annotation)
    if annotation is list or origin is list:
        args = typing.get_args(annotation)
        if args:
            item, optional = strip_optional(args[0], where)
            items = type_schema(item, where)
            if optional:
                items = dict(items, nullable=True)
        else:
            items = {}
        return {"type": "array", "items": items}
    if annotation is dict or origin is dict:
        args = typing.get_args(annotation)
        if args and args[0] is not str:
            raise SchemaError("%s: dict keys must be str (JSON object keys), not %s" % (where, _type_name(args[0])))
        schema: Dict[str, Any] = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = type_schema(strip_optional(args[1], where)[0], where)
        return schema
    if inspect.isclass(annotation) and (dataclasses.is_dataclass(annotation) or _is_typed_dict(annotation)):
        return _object_schema(annotation, annotation.__name__)
    if origin in _ITERATORS or (inspect.isclass(origin) and issubclass(origin, (ConcatenateIterator, AsyncConcatenateIterator))):
        raise SchemaError("%s: %s can only be an output type" % (where, _type_name(annotation)))
    raise SchemaError("%s: unsupported type %s; use str, int, float, bool, cog.Path, cog.Secret, "
                      "typing.Any, a list, a dict or a dataclass of these" % (where, _type_name(annotation)))


def _find_line(fn: Callable[..., Any], pattern: "re.Pattern[str]") -> Tuple[str, str]:
    """("predict.py:12", the stripped line) for the first line of fn's source that
    `pattern` finds; ("", "") when there is no source or no such line."""
    try:
        lines, first = inspect.getsourcelines(fn)
        filename = os.path.basename(inspect.getsourcefile(fn) or "")
    except (OSError, TypeError):
        return "", ""
    for offset, line in enumerate(lines):
        if pattern.search(line):
            return "%s:%d" % (filename, first + offset), line.strip()
    return "", ""


def _source_line(fn: Callable[..., Any], name: str) -> Tuple[str, str]:
    """("predict.py:12", "prompt: str = Input(default=None)") for an input of fn."""
    location, line = _find_line(fn, re.compile(r"\b%s\s*:" % re.escape(name)))
    return location, line.rstrip(",")


_DEF = re.compile(r"^\s*(async\s+)?def\s")


def _def_line(fn: Callable[..., Any]) -> Tuple[str, str]:
    """("predict.py:12", "def predict(text: str) -> str:") for fn."""
    return _find_line(fn, _DEF)


def _quoted(fn: Callable[..., Any], fixed: Callable[[str], str], fallback: str) -> str:
    """The def line of fn, and what to write instead, for a message."""
    location, line = _def_line(fn)
    if not line:
        return "Write:\n  %s" % fallback
    return "  %s\n  (%s)\nWrite:\n  %s" % (line, location, fixed(line))


def check_takes_self(fn: Callable[..., Any], class_name: str, method: str) -> None:
    """A method defined on a class gets the instance first: it must have a
    parameter for it (self), else the first input would receive the predictor."""
    parameters = list(inspect.signature(fn).parameters.values())
    first = parameters[0] if parameters else None
    if first is not None and first.kind == first.VAR_POSITIONAL:
        return  # *args: refused with its own message
    if first is not None and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD) \
            and first.annotation is inspect.Parameter.empty and first.default is inspect.Parameter.empty:
        return
    raise SchemaError(
        "%s.%s() does not take self first: Python passes the predictor itself as the first "
        "argument of a method, so %s.\n%s"
        % (class_name, method,
           "it would take the place of input '%s'" % first.name if first is not None
           else "the call would fail",
           _quoted(fn, lambda line: re.sub(r"\(\s*", "(self, " if parameters else "(self", line, count=1),
                   "def %s(self, ...)" % method)))


def check_setup(fn: Callable[..., Any], class_name: str) -> None:
    """setup() takes self and at most `weights`, and returns nothing."""
    is_static = isinstance(getattr(fn, "__self__", None), type)
    if not is_static:
        check_takes_self(fn, class_name, "setup")
    parameters = list(inspect.signature(fn).parameters.values())[0 if is_static else 1:]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        raise SchemaError(
            "%s.setup(): *args and **kwargs are not supported: setup() is called with no "
            "argument, or with weights only.\n%s"
            % (class_name, _quoted(fn, lambda line: re.sub(r"\(.*\)", "(self)", line, count=1),
                                   "def setup(self) -> None:")))
    extra = [p.name for p in parameters if p.name != "weights" and p.default is inspect.Parameter.empty]
    if extra:
        raise SchemaError(
            "%s.setup() takes %s, which nothing can give: setup() is called with no argument, or "
            "with weights (the weights URL or path, from COG_WEIGHTS or ./weights); give %s a "
            "default or remove it" % (class_name, ", ".join(repr(n) for n in extra),
                                      "it" if len(extra) == 1 else "them"))
    try:
        returns = typing.get_type_hints(fn).get("return", inspect.Parameter.empty)
    except Exception:
        returns = inspect.signature(fn).return_annotation
    if returns in (inspect.Parameter.empty, None, type(None), "None"):
        return
    raise SchemaError(
        "%s.setup() is annotated to return %s, but setup() returns nothing: what it returns is "
        "thrown away; keep models and state on self.\n%s"
        % (class_name, _type_name(returns),
           _quoted(fn, lambda line: re.sub(r"\)\s*->.*:", ") -> None:", line, count=1),
                   "def setup(self) -> None:")))


def _check_constraints(name: str, base: Any, info: FieldInfo, default: Any, has_default: bool) -> None:
    where = "input '%s'" % name
    numeric = base in (int, float)
    textual = base is str or (inspect.isclass(base) and issubclass(base, Secret))
    if (info.ge is not None or info.le is not None) and not numeric:
        raise SchemaError("%s: ge/le only apply to int and float inputs, not %s" % (where, _type_name(base)))
    if (info.min_length is not None or info.max_length is not None) and not textual:
        raise SchemaError("%s: min_length/max_length only apply to str inputs, not %s" % (where, _type_name(base)))
    if info.regex is not None:
        if not textual:
            raise SchemaError("%s: regex only applies to str inputs, not %s" % (where, _type_name(base)))
        try:
            re.compile(info.regex)
        except re.error as e:
            raise SchemaError("%s: regex %r is not a valid regular expression: %s" % (where, info.regex, e))
    if info.choices is not None:
        choices = list(info.choices)
        if len(choices) < 2:
            raise SchemaError("%s: choices needs at least two values, got %r" % (where, choices))
        kinds = {type(c) for c in choices}
        if len(kinds) != 1:
            raise SchemaError("%s: choices must all be of one type, got %s"
                              % (where, ", ".join(sorted(k.__name__ for k in kinds))))
        if base not in (str, int):
            raise SchemaError("%s: choices are only for str and int inputs (as in Cog), not %s; "
                              "make it a str input with choices=%r" % (where, _type_name(base),
                                                                       [str(c) for c in choices]))
        if kinds != {base}:
            raise SchemaError("%s: choices of a %s input must be %s values, got %r"
                              % (where, _type_name(base), _type_name(base), choices))
        if info.ge is not None or info.le is not None or info.min_length is not None \
                or info.max_length is not None or info.regex is not None:
            raise SchemaError("%s: choices cannot be combined with ge, le, min_length, max_length or regex"
                              % where)
    if not has_default or default is None:
        return
    if isinstance(default, (list, tuple)):  # a list input: its constraints hold for each item
        stack = [("[%d]" % index, item) for index, item in enumerate(default)][::-1]
        while stack:  # nested lists too, element by element
            at, item = stack.pop()
            if isinstance(item, (list, tuple)):
                stack += [("%s[%d]" % (at, i), inner) for i, inner in enumerate(item)][::-1]
                continue
            problem = _default_problem(info, item)
            if problem:
                raise SchemaError("%s: item %s of the default, %r, %s; every item of a list input "
                                  "must meet its constraints" % (where, at, item, problem))
        return
    problem = _default_problem(info, default)
    if problem:
        raise SchemaError("%s: the default %r %s" % (where, default, problem))


def _default_problem(info: FieldInfo, default: Any) -> str:
    """How one default value breaks its input's constraints ("" if it does not)."""
    value = default.get_secret_value() if isinstance(default, Secret) else default
    if isinstance(value, bool):
        return ""
    if info.ge is not None and isinstance(value, (int, float)) and value < info.ge:
        return "is less than ge=%r" % info.ge
    if info.le is not None and isinstance(value, (int, float)) and value > info.le:
        return "is greater than le=%r" % info.le
    if info.min_length is not None and isinstance(value, str) and len(value) < info.min_length:
        return "is shorter than min_length=%r" % info.min_length
    if info.max_length is not None and isinstance(value, str) and len(value) > info.max_length:
        return "is longer than max_length=%r" % info.max_length
    if info.regex is not None and isinstance(value, str) and not re.search(info.regex, value):
        return "does not match regex %r" % info.regex
    if info.choices is not None and value not in info.choices:
        return "is not one of the choices %r" % (list(info.choices),)
    return ""


def input_component(fn: Callable[..., Any], skip_self: bool,
                    title: str = "Input") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The `Input` component and any enum components its choices need."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:  # a name the module does not define, usually
        raise SchemaError("cannot resolve the type annotations of %s(): %s" % (fn.__qualname__, e))
    signature = inspect.signature(fn)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    extra: Dict[str, Any] = {}
    parameters = list(signature.parameters.values())
    if skip_self and parameters and parameters[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                           inspect.Parameter.POSITIONAL_OR_KEYWORD):
        parameters = parameters[1:]  # the instance, whatever its name (load() checked it is one)
    for order, parameter in enumerate(parameters):
        name = parameter.name
        where = "input '%s'" % name
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SchemaError("%s(): *args and **kwargs are not supported: name every input, "
                              "e.g. def predict(self, prompt: str)" % fn.__name__)
        if name not in hints:
            raise SchemaError("%s has no type annotation: write e.g. `%s: str`" % (where, name))
        annotation, optional = strip_optional(hints[name], where)
        info = parameter.default if isinstance(parameter.default, FieldInfo) else FieldInfo()
        if isinstance(parameter.default, FieldInfo):
            default = info.default
        else:
            default = MISSING if parameter.default is inspect.Parameter.empty else parameter.default
        if default is MISSING and info.default_factory is not None:
            default = _factory_default(name, info.default_factory)
        has_default = default is not MISSING
        if has_default and default is None and hints[name] is typing.Any:
            optional = True  # Any takes None: it is not the mistake the check below is for
        if has_default and default is None and not optional:
            location, line = _source_line(fn, name)
            suggestion = line.replace(": %s" % _type_name(hints[name]), ": Optional[%s]" % _type_name(hints[name]), 1) \
                if line else "%s: Optional[%s] = Input(...)" % (name, _type_name(hints[name]))
            raise SchemaError(
                "%s%s has default None but its type %s is not Optional.\n"
                "  %s\nAn input that may be None must say so; write:\n  %s\n"
                "(Optional comes from typing: `from typing import Optional`.)"
                % (location + ": " if location else "", where, _type_name(hints[name]), line or "", suggestion))
        base_for_checks = annotation  # a list's constraints are its elements', at any depth
        while typing.get_origin(base_for_checks) is list and typing.get_args(base_for_checks):
            base_for_checks = strip_optional(typing.get_args(base_for_checks)[0], where)[0]
        _check_constraints(name, base_for_checks, info, default, has_default)
        schema = type_schema(annotation, where)
        prop: Dict[str, Any] = {}
        if info.choices is not None:
            extra[name] = dict(schema, enum=list(info.choices), title=name, description="An enumeration.")
            prop["x-order"] = order
            prop["allOf"] = [{"$ref": "#/components/schemas/%s" % name}]
        else:
            prop.update(schema)
            prop["title"] = _title(name)
            prop["x-order"] = order
        if info.description is not None:
            prop["description"] = info.description
        if info.ge is not None:
            prop["minimum"] = float(info.ge)
        if info.le is not None:
            prop["maximum"] = float(info.le)
        if info.min_length is not None:
            prop["minLength"] = info.min_length
        if info.max_length is not None:
            prop["maxLength"] = info.max_length
        if info.regex is not None:
            prop["pattern"] = info.regex
        if info.deprecated is not None:
            prop["deprecated"] = info.deprecated
        if has_default and default is not None:
            prop["default"] = _json_default(default)
        if optional:
            prop["nullable"] = True
        if not has_default and not optional and info.default_factory is None:
            required.append(name)
        properties[name] = prop
    component: Dict[str, Any] = {"properties": properties, "type": "object", "title": title}
    if required:
        component["required"] = required
    return component, extra


def _factory_default(name: str, factory: Callable[[], Any]) -> Any:
    """What default_factory makes, published as the input's default (as upstream
    Cog's schema does); the server fills it in, so every prediction decodes a
    fresh copy."""
    try:
        value = factory()
    except Exception as e:
        raise SchemaError("input '%s': its default_factory raised %s: %s" % (name, type(e).__name__, e))
    try:
        json.dumps(_json_default(value), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SchemaError("input '%s': its default_factory made %r, which is no JSON value (%s); "
                          "return a str, number, bool, list or dict" % (name, value, e))
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_json_default(v) for v in value]
    return value


def _object_schema(cls: type, title: str) -> Dict[str, Any]:
    """An object type (cog.BaseModel, a dataclass or a TypedDict): its fields, each titled."""
    hints = typing.get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        required_names = [f.name for f in dataclasses.fields(cls)
                          if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    else:
        names = list(hints)
        required_names = [n for n in names if n in getattr(cls, "__required_keys__", names)]
    properties: Dict[str, Any] = {}
    for name in names:
        where = "field '%s' of %s" % (name, cls.__name__)
        annotation, optional = strip_optional(hints[name], where)
        prop = dict(type_schema(annotation, where))
        prop["title"] = _title(name)
        if optional:
            prop["nullable"] = True
        properties[name] = prop
    schema: Dict[str, Any] = {"properties": properties, "type": "object"}
    required = [n for n in required_names if not properties[n].get("nullable")]
    if required:
        schema["required"] = required
    schema["title"] = title
    return schema


def output_component(fn: Callable[..., Any], title: str = "Output") -> Dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise SchemaError("cannot resolve the return annotation of %s(): %s" % (fn.__qualname__, e))
    if "return" not in hints:
        raise SchemaError("%s() has no return annotation: write the output type, e.g. "
                          "`def %s(self, ...) -> str:`" % (fn.__qualname__, fn.__name__))
    annotation = hints["return"]
    origin = typing.get_origin(annotation)
    concatenate = inspect.isclass(origin) and issubclass(origin, (ConcatenateIterator, AsyncConcatenateIterator))
    if origin is None and annotation in _ITERATORS + (ConcatenateIterator, AsyncConcatenateIterator):
        origin = annotation  # collections.abc.Iterator and the like, not subscripted
        concatenate = issubclass(origin, (ConcatenateIterator, AsyncConcatenateIterator))
    if origin in _ITERATORS or concatenate:
        args = typing.get_args(annotation)
        if not args:
            raise SchemaError(
                "output: %s needs the type of what it yields, e.g. -> %s[str]; the schema and the "
                "checks of every item come from it" % (origin.__name__, origin.__name__))
        item = strip_optional(args[0], "output")[0]
        if concatenate and item is not str:
            raise SchemaError("output: %s must yield str, not %s" % (origin.__name__, _type_name(item)))
        schema: Dict[str, Any] = {"items": type_schema(item, "output"), "type": "array", "title": title,
                                  "x-cog-array-type": "iterator"}
        if concatenate:
            schema["x-cog-array-display"] = "concatenate"
        return schema
    inner, optional = strip_optional(annotation, "output")
    if optional:
        raise SchemaError(
            "%s() returns %s: an output cannot be Optional. Return %s (a prediction that has "
            "nothing to return should raise an exception, which fails it with its message)"
            % (fn.__name__, _type_name(annotation), _type_name(inner)))
    if inspect.isclass(inner) and (dataclasses.is_dataclass(inner) or _is_typed_dict(inner)):
        return _object_schema(inner, title)
    schema = dict(type_schema(inner, "output"))
    schema["title"] = title
    return schema


def predictor_document(predict: Optional[Callable[..., Any]], is_method: bool,
                       train: Optional[Callable[..., Any]] = None,
                       train_is_method: bool = False) -> Dict[str, Any]:
    """The whole OpenAPI document of a predict function, and of train() when there is one."""
    input_schema: Dict[str, Any] = {"properties": {}, "type": "object", "title": "Input"}
    enums: Dict[str, Any] = {}
    output_schema: Dict[str, Any] = {"title": "Output"}
    if predict is not None:
        input_schema, enums = input_component(predict, is_method)
        output_schema = output_component(predict)
    training = None
    if train is not None:
        train_input, train_enums = input_component(train, train_is_method, "TrainingInput")
        training = (train_input, train_enums, output_component(train, "TrainingOutput"))
    return openapi_document(input_schema, enums, output_schema, training)


def openapi_document(input_schema: Dict[str, Any], enums: Dict[str, Any],
                     output_schema: Dict[str, Any],
                     training: Optional[Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]] = None
                     ) -> Dict[str, Any]:
    """The whole document, with the fixed parts legacy Cog serves."""
    schemas: Dict[str, Any] = {
        "HTTPValidationError": {
            "properties": {"detail": {"items": {"$ref": "#/components/schemas/ValidationError"},
                                      "type": "array", "title": "Detail"}},
            "type": "object", "title": "HTTPValidationError"},
        "Input": input_schema,
        "Output": output_schema,
        "PredictionRequest": {
            "properties": {
                "input": {"$ref": "#/components/schemas/Input", "nullable": True},
                "id": {"title": "Id", "type": "string", "nullable": True},
                "created_at": {"title": "Created At", "type": "string", "format": "date-time",
                               "nullable": True},
                "context": {"title": "Context", "additionalProperties": {"type": "string"},
                            "type": "object", "nullable": True},
                "output_file_prefix": {"title": "Output File Prefix", "type": "string",
                                       "nullable": True},
                "webhook": {"title": "Webhook", "type": "string", "maxLength": 65536,
                            "minLength": 1, "format": "uri", "nullable": True},
                "webhook_events_filter": {"default": ["start", "output", "logs", "completed"],
                                          "items": {"$ref": "#/components/schemas/WebhookEvent"},
                                          "type": "array", "nullable": True},
            },
            "type": "object", "title": "PredictionRequest"},
        "PredictionResponse": {
            "properties": {
                "input": {"$ref": "#/components/schemas/Input", "nullable": True},
                "output": {"$ref": "#/components/schemas/Output"},
                "id": {"title": "Id", "type": "string", "nullable": True},
                "version": {"title": "Version", "type": "string", "nullable": True},
                "created_at": {"title": "Created At", "type": "string", "format": "date-time",
                               "nullable": True},
                "started_at": {"title": "Started At", "type": "string", "format": "date-time",
                               "nullable": True},
                "completed_at": {"title": "Completed At", "type": "string", "format": "date-time",
                                 "nullable": True},
                "logs": {"type": "string", "title": "Logs", "default": ""},
                "error": {"title": "Error", "type": "string", "nullable": True},
                "status": {"$ref": "#/components/schemas/Status", "nullable": True},
                "metrics": {"title": "Metrics", "additionalProperties": True, "type": "object",
                            "nullable": True},
            },
            "type": "object", "title": "PredictionResponse"},
        "Status": {"type": "string",
                   "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
                   "title": "Status", "description": "An enumeration."},
        "ValidationError": {
            "properties": {
                "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array", "title": "Location"},
                "msg": {"type": "string", "title": "Message"},
                "type": {"type": "string", "title": "Error Type"},
            },
            "type": "object", "required": ["loc", "msg", "type"], "title": "ValidationError"},
        "WebhookEvent": {"type": "string", "enum": ["start", "output", "logs", "completed"],
                         "title": "WebhookEvent", "description": "An enumeration."},
    }
    schemas.update(enums)

    def response(title: str) -> Dict[str, Any]:
        return {"200": {"description": "Successful Response",
                        "content": {"application/json": {"schema": {"title": title}}}}}

    validation = {"description": "Validation Error",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
    prediction_response = {"description": "Successful Response",
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionResponse"}}}}
    prefer = {"name": "prefer", "in": "header", "required": False,
              "schema": {"title": "Prefer", "type": "string"}}
    prediction_id = {"name": "prediction_id", "in": "path", "required": True,
                     "schema": {"type": "string", "title": "Prediction ID"}}
    paths = {
        "/shutdown": {"post": {"summary": "Start Shutdown", "operationId": "start_shutdown_shutdown_post",
                               "responses": response("Response Start Shutdown Shutdown Post")}},
        "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": response("Response Root  Get")}},
        "/health-check": {"get": {"summary": "Healthcheck", "operationId": "healthcheck_health_check_get",
                                  "responses": response("Response Healthcheck Health Check Get")}},
        "/predictions": {"post": {
            "summary": "Predict", "description": "Run a single prediction on the model",
            "operationId": "predict_predictions_post", "parameters": [prefer],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionRequest"}}}},
            "responses": {"200": prediction_response, "422": validation}}},
        "/predictions/{prediction_id}": {"put": {
            "summary": "Predict Idempotent",
            "description": "Run a single prediction on the model (idempotent creation).",
            "operationId": "predict_idempotent_predictions__prediction_id__put",
            "parameters": [prediction_id, prefer],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "allOf": [{"$ref": "#/components/schemas/PredictionRequest"}], "title": "Prediction Request"}}}},
            "responses": {"200": prediction_response, "422": validation}}},
        "/predictions/{prediction_id}/cancel": {"post": {
            "summary": "Cancel", "description": "Cancel a running prediction",
            "operationId": "cancel_predictions__prediction_id__cancel_post",
            "parameters": [prediction_id],
            "responses": {"200": {"description": "Successful Response", "content": {"application/json": {
                "schema": {"title": "Response Cancel Predictions  Prediction Id  Cancel Post"}}}},
                "422": validation}}},
    }
    if training is not None:
        _add_training(paths, schemas, *training, validation=validation)
    return {"openapi": "3.0.2", "info": {"title": "Cog", "version": "0.1.0"}, "paths": paths,
            "components": {"schemas": schemas}}


def _add_training(paths: Dict[str, Any], schemas: Dict[str, Any], train_input: Dict[str, Any],
                  train_enums: Dict[str, Any], train_output: Dict[str, Any],
                  validation: Dict[str, Any]) -> None:
    """The /trainings routes and their components, built like the prediction ones."""
    schemas["TrainingInput"] = train_input
    schemas["TrainingOutput"] = train_output
    for name, enum in train_enums.items():
        schemas.setdefault(name, enum)
    request = json.loads(json.dumps(schemas["PredictionRequest"]))
    request["properties"]["input"]["$ref"] = "#/components/schemas/TrainingInput"
    request["title"] = "TrainingRequest"
    schemas["TrainingRequest"] = request
    response = json.loads(json.dumps(schemas["PredictionResponse"]))
    response["properties"]["input"]["$ref"] = "#/components/schemas/TrainingInput"
    response["properties"]["output"]["$ref"] = "#/components/schemas/TrainingOutput"
    response["title"] = "TrainingResponse"
    schemas["TrainingResponse"] = response
    ok = {"description": "Successful Response",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrainingResponse"}}}}
    prefer = {"name": "prefer", "in": "header", "required": False, "schema": {"title": "Prefer", "type": "string"}}
    training_id = {"name": "training_id", "in": "path", "required": True,
                   "schema": {"type": "string", "title": "Training ID"}}
    paths["/trainings"] = {"post": {
        "summary": "Train", "description": "Run a single training on the model",
        "operationId": "train_trainings_post", "parameters": [prefer],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrainingRequest"}}}},
        "responses": {"200": ok, "422": validation}}}
    paths["/trainings/{training_id}"] = {"put": {
        "summary": "Train Idempotent", "description": "Run a single training on the model (idempotent creation).",
        "operationId": "train_idempotent_trainings__training_id__put", "parameters": [training_id, prefer],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/TrainingRequest"}], "title": "Training Request"}}}},
        "responses": {"200": ok, "422": validation}}}
    paths["/trainings/{training_id}/cancel"] = {"post": {
        "summary": "Cancel Training", "description": "Cancel a running training",
        "operationId": "cancel_training_trainings__training_id__cancel_post", "parameters": [training_id],
        "responses": {"200": {"description": "Successful Response", "content": {"application/json": {
            "schema": {"title": "Response Cancel Training Trainings  Training Id  Cancel Post"}}}},
            "422": validation}}}
