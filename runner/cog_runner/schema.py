"""The OpenAPI document of a predictor, derived with `inspect`, shaped as legacy Cog's."""

import collections.abc
import dataclasses
import inspect
import pathlib
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from cog.types import _MISSING as MISSING
from cog.types import AsyncConcatenateIterator, ConcatenateIterator, FieldInfo, Secret


class SchemaError(TypeError):
    """A signature the runtime cannot serve; the message says what to change."""


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _strip_optional(annotation: Any) -> Tuple[Any, bool]:
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == len(typing.get_args(annotation)):
            raise SchemaError("unions are not supported (%r): use one type" % (annotation,))
        if len(args) != 1:
            raise SchemaError("unions are not supported (%r): use one type" % (annotation,))
        return args[0], True
    return annotation, False


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
    if inspect.isclass(annotation) and issubclass(annotation, (pathlib.PurePath,)):
        return {"type": "string", "format": "uri"}
    origin = typing.get_origin(annotation)
    if annotation is list or origin in (list, List):
        args = typing.get_args(annotation)
        items = type_schema(args[0], where) if args else {}
        return {"type": "array", "items": items}
    if getattr(annotation, "__name__", "") == "File":
        raise SchemaError("%s: cog.File was removed; use cog.Path instead" % where)
    raise SchemaError("%s: unsupported type %r" % (where, annotation))


def input_component(fn: Callable[..., Any], skip_self: bool) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The `Input` component and any enum components its choices need."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:  # a name the module does not define, usually
        raise SchemaError("cannot resolve the type annotations of %s: %s" % (fn.__qualname__, e))
    signature = inspect.signature(fn)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    extra: Dict[str, Any] = {}
    order = 0
    for name, parameter in signature.parameters.items():
        if skip_self and order == 0 and name == "self":
            skip_self = False
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SchemaError("%s: *args and **kwargs are not supported; name every input" % name)
        if name not in hints:
            raise SchemaError("input '%s' has no type annotation: write e.g. %s: str" % (name, name))
        annotation, optional = _strip_optional(hints[name])
        info = parameter.default if isinstance(parameter.default, FieldInfo) else None
        default = parameter.default
        if info is not None:
            default = info.default if info.default is not MISSING else inspect.Parameter.empty
        has_default = default is not inspect.Parameter.empty
        if has_default and default is None and not optional:
            raise SchemaError(
                "input '%s' has default None but its type is not Optional: write "
                "`%s: Optional[%s] = Input(...)`" % (name, name, getattr(annotation, "__name__", annotation)))
        schema = type_schema(annotation, "input '%s'" % name)
        prop: Dict[str, Any] = {}
        choices = info.choices if info is not None else None
        if choices is not None:
            extra[name] = dict(schema, enum=list(choices), title=name, description="An enumeration.")
            prop["x-order"] = order
            prop["allOf"] = [{"$ref": "#/components/schemas/%s" % name}]
        else:
            prop.update(schema)
            prop["title"] = _title(name)
            prop["x-order"] = order
        if info is not None:
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
        if not has_default and not optional:
            required.append(name)
        properties[name] = prop
        order += 1
    component: Dict[str, Any] = {"properties": properties, "type": "object", "title": "Input"}
    if required:
        component["required"] = required
    return component, extra


def _json_default(value: Any) -> Any:
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_default(v) for v in value]
    return value


def _object_schema(cls: type, title: str) -> Dict[str, Any]:
    """An output object (cog.BaseModel or a dataclass): its fields, each with a title."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for field in fields:
        annotation, optional = _strip_optional(hints[field.name])
        prop = dict(type_schema(annotation, "output field '%s'" % field.name))
        prop["title"] = _title(field.name)
        if optional:
            prop["nullable"] = True
        properties[field.name] = prop
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    schema: Dict[str, Any] = {"properties": properties, "type": "object"}
    if required:
        schema["required"] = required
    schema["title"] = title
    return schema


def output_component(fn: Callable[..., Any]) -> Dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise SchemaError("cannot resolve the return annotation of %s: %s" % (fn.__qualname__, e))
    if "return" not in hints:
        raise SchemaError("%s has no return annotation: write e.g. `-> str`" % fn.__qualname__)
    annotation = hints["return"]
    origin = typing.get_origin(annotation)
    if origin in (collections.abc.Iterator, collections.abc.AsyncIterator, collections.abc.Generator,
                  collections.abc.AsyncGenerator) or (
            inspect.isclass(origin) and issubclass(origin, (ConcatenateIterator, AsyncConcatenateIterator))):
        (item,) = typing.get_args(annotation)[:1]
        schema: Dict[str, Any] = {"items": type_schema(item, "output"), "type": "array", "title": "Output",
                                  "x-cog-array-type": "iterator"}
        if inspect.isclass(origin) and issubclass(origin, (ConcatenateIterator, AsyncConcatenateIterator)):
            schema["x-cog-array-display"] = "concatenate"
        return schema
    inner, optional = _strip_optional(annotation)
    if inspect.isclass(inner) and dataclasses.is_dataclass(inner):
        return _object_schema(inner, "Output")
    schema = dict(type_schema(inner, "output"))
    schema["title"] = "Output"
    return schema


def predictor_document(predict: Optional[Callable[..., Any]], is_method: bool) -> Dict[str, Any]:
    """The whole OpenAPI document of a predict function (or of none: a train-only model)."""
    input_schema: Dict[str, Any] = {"properties": {}, "type": "object", "title": "Input"}
    enums: Dict[str, Any] = {}
    output_schema: Dict[str, Any] = {"title": "Output"}
    if predict is not None:
        input_schema, enums = input_component(predict, is_method)
        output_schema = output_component(predict)
    return openapi_document(input_schema, enums, output_schema)


def openapi_document(input_schema: Dict[str, Any], enums: Dict[str, Any],
                     output_schema: Dict[str, Any]) -> Dict[str, Any]:
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
    return {"openapi": "3.0.2", "info": {"title": "Cog", "version": "0.1.0"}, "paths": paths,
            "components": {"schemas": schemas}}
