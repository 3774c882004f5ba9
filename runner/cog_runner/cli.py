"""Command-line tools over a model directory, without a server.

  python3 -m cog_runner schema [DIR]   print the OpenAPI document (like `cog schema`)
  python3 -m cog_runner test [DIR]     run setup() and one prediction on the
                                       predictor's `test_inputs` (like `cog test`)
"""

import inspect
import json
import os
import sys
from typing import Any, Dict, List

from . import cog_yaml
from .coerce import input_converters
from .predictor_ref import load
from .schema import SchemaError, predictor_document


def _document(directory: str) -> Dict[str, Any]:
    config = cog_yaml.load(directory)
    predictor = load(config.predict, directory) if config.predict else None
    trainer = load(config.train, directory, "train") if config.train else None
    return predictor_document(predictor.signature_source if predictor else None,
                              bool(predictor and predictor.is_method),
                              trainer.signature_source if trainer else None,
                              bool(trainer and trainer.is_method))


def schema(directory: str) -> int:
    print(json.dumps(_document(directory), indent=2))
    return 0


def _test_inputs(predictor: Any) -> Dict[str, Any]:
    owner = getattr(predictor.predict, "__self__", None)
    for source in (owner, sys.modules.get(getattr(predictor.signature_source, "__module__", ""))):
        inputs = getattr(source, "test_inputs", None)
        if isinstance(inputs, dict):
            return dict(inputs)
    return {}


def test(directory: str) -> int:
    config = cog_yaml.load(directory)
    if not config.predict:
        print("cog.yaml has no predict: nothing to test", file=sys.stderr)
        return 1
    document = _document(directory)
    predictor = load(config.predict, directory)
    payload = _test_inputs(predictor)
    properties = document["components"]["schemas"]["Input"]["properties"]
    required: List[str] = document["components"]["schemas"]["Input"].get("required", [])
    missing = [name for name in required if name not in payload]
    if missing:
        print("test_inputs lacks the required input(s) %s: define test_inputs = {...} on the Predictor"
              % ", ".join(missing), file=sys.stderr)
        return 1
    for name, prop in properties.items():
        payload.setdefault(name, prop.get("default"))
    for name, convert in input_converters(predictor.signature_source).items():
        payload[name] = convert(payload.get(name))
    os.chdir(directory)
    if predictor.setup is not None:
        result = predictor.setup()
        if inspect.isawaitable(result):
            import asyncio
            asyncio.run(result)
    from .outputs import encode_output
    from .worker import run_to_completion
    output = run_to_completion(predictor.predict(**payload))
    print(json.dumps(encode_output(output)))
    return 0


def main(argv: List[str]) -> int:
    if not argv or argv[0] not in ("schema", "test") or len(argv) > 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory = os.path.abspath(argv[1] if len(argv) > 1 else ".")
    try:
        return schema(directory) if argv[0] == "schema" else test(directory)
    except (SchemaError, FileNotFoundError, ValueError, ImportError, AttributeError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
