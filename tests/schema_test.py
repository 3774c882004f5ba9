"""The runner's schema and definition-time checks, over a corpus of predictors.

Every entry is a predict.py as a model author would write it, with the schema
it must produce or the message it must be refused with. Each is written to its
own directory and loaded the way the runner loads a model.
"""

import json
import os
import shutil
import sys
import tempfile
import textwrap
import unittest

from cog_runner.predictor_ref import load
from cog_runner.schema import SchemaError, predictor_document

HEADER = """\
import dataclasses
import pathlib
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, TypedDict
from cog import (AsyncConcatenateIterator, BaseModel, BasePredictor, ConcatenateIterator, Input, Path,
                 Secret)
"""


def document(source: str, ref: str = "predict.py:Predictor"):
    directory = tempfile.mkdtemp(prefix="cog-schema-")
    try:
        source = textwrap.dedent(source)
        future = ""
        if source.startswith("from __future__"):
            future, source = source.split("\n", 1)
            future += "\n"
        with open(os.path.join(directory, "predict.py"), "w") as f:
            f.write(future + HEADER + source)
        sys.modules.pop("predict", None)
        loaded = load(ref, directory)
        return json.loads(json.dumps(predictor_document(loaded.signature_source, loaded.is_method)))
    finally:
        sys.path[:] = [p for p in sys.path if p != directory]
        shutil.rmtree(directory)


def predictor(signature: str, body: str = "return None", extra: str = "") -> str:
    return extra + "\nclass Predictor(BasePredictor):\n    %s\n        %s\n" % (signature, body)


class TypesTest(unittest.TestCase):
    def schemas(self, signature, extra=""):
        doc = document(predictor(signature, extra=extra))
        return doc["components"]["schemas"]

    def test_optional_spellings_are_optional_and_nullable(self):
        for spelling in ("Optional[int]", "int | None", "None | int"):
            props = self.schemas("def predict(self, x: %s) -> str:" % spelling)["Input"]
            self.assertEqual(props["properties"]["x"], {"type": "integer", "title": "X", "x-order": 0,
                                                        "nullable": True}, spelling)
            self.assertNotIn("required", props, spelling)

    def test_lists_nested_and_bare(self):
        props = self.schemas("def predict(self, a: list[int], b: List[List[int]], c: list, "
                             "d: Optional[List[str]] = None) -> str:")["Input"]["properties"]
        self.assertEqual(props["a"]["items"], {"type": "integer"})
        self.assertEqual(props["b"]["items"], {"type": "array", "items": {"type": "integer"}})
        self.assertEqual(props["c"]["items"], {})
        self.assertTrue(props["d"]["nullable"])

    def test_any_pathlike_and_secret(self):
        props = self.schemas("def predict(self, a: Any, p: pathlib.Path, s: Secret) -> str:")["Input"]["properties"]
        self.assertEqual(props["a"], {"title": "A", "x-order": 0})
        self.assertEqual(props["p"]["format"], "uri")
        self.assertEqual(props["s"]["format"], "password")

    def test_dicts_dataclasses_and_typed_dicts_are_objects(self):
        extra = """
@dataclasses.dataclass
class Box:
    w: int
    label: Optional[str] = None

class Point(TypedDict):
    x: float
    y: float
"""
        props = self.schemas("def predict(self, d: dict, m: Dict[str, int], box: Box, pt: Point) -> str:",
                             extra)["Input"]["properties"]
        self.assertEqual(props["d"]["type"], "object")
        self.assertEqual(props["m"]["additionalProperties"], {"type": "integer"})
        self.assertEqual(props["box"]["properties"]["w"], {"type": "integer", "title": "W"})
        self.assertEqual(props["box"]["required"], ["w"])
        self.assertEqual(props["pt"]["required"], ["x", "y"])

    def test_future_annotations_are_resolved(self):
        doc = document("from __future__ import annotations\n" + predictor("def predict(self, x: Optional[List[int]] = None) -> List[str]:"))
        schemas = doc["components"]["schemas"]
        self.assertEqual(schemas["Input"]["properties"]["x"]["items"], {"type": "integer"})
        self.assertEqual(schemas["Output"], {"type": "array", "items": {"type": "string"}, "title": "Output"})

    def test_outputs(self):
        cases = {
            "-> Iterator[str]": {"items": {"type": "string"}, "type": "array", "title": "Output",
                                 "x-cog-array-type": "iterator"},
            "-> AsyncIterator[int]": {"items": {"type": "integer"}, "type": "array", "title": "Output",
                                      "x-cog-array-type": "iterator"},
            "-> AsyncConcatenateIterator[str]": {"items": {"type": "string"}, "type": "array", "title": "Output",
                                                 "x-cog-array-type": "iterator",
                                                 "x-cog-array-display": "concatenate"},
            "-> List[Path]": {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"},
        }
        for annotation, expected in cases.items():
            output = self.schemas("def predict(self) %s:" % annotation)["Output"]
            self.assertEqual(output, expected, annotation)

    def test_base_model_output_with_nesting_and_lists(self):
        extra = """
class Inner(BaseModel):
    n: int

class Result(BaseModel):
    name: str
    inner: Inner
    items: List[Inner]
    note: Optional[str] = None
"""
        output = self.schemas("def predict(self) -> Result:", extra)["Output"]
        self.assertEqual(output["title"], "Output")
        self.assertEqual(output["required"], ["name", "inner", "items"])
        self.assertEqual(output["properties"]["inner"]["properties"]["n"], {"type": "integer", "title": "N"})
        self.assertEqual(output["properties"]["items"]["items"]["title"], "Inner")
        self.assertTrue(output["properties"]["note"]["nullable"])

    def test_default_factory_is_optional_and_published_as_the_default(self):
        props = self.schemas("def predict(self, xs: List[int] = Input(default_factory=list),\n"
                             "        f3: List[float] = Input(default_factory=lambda: [3, 4])) -> str:")["Input"]
        self.assertNotIn("required", props)
        self.assertEqual(props["properties"]["xs"]["default"], [])
        self.assertEqual(props["properties"]["f3"], {"type": "array", "items": {"type": "number"},
                                                     "title": "F3", "x-order": 1, "default": [3, 4]})

    def test_deprecated_is_shown(self):
        props = self.schemas("def predict(self, x: int = Input(default=1, deprecated=True)) -> str:")["Input"]
        self.assertTrue(props["properties"]["x"]["deprecated"])

    def test_plain_function_predictor(self):
        doc = document("def predict(text: str) -> str:\n    return text\n", "predict.py:predict")
        self.assertEqual(doc["components"]["schemas"]["Input"]["required"], ["text"])


DECORATORS = """
import functools

def plain(f):
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)
    return wrapper

def wrapped(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)
    return wrapper

def timed(label):
    def decorate(f):
        def inner(self, *args, **kwargs):
            return f(self, *args, **kwargs)
        return inner
    return decorate
"""


class DecoratorsTest(unittest.TestCase):
    """A decorated setup/predict is seen through its wrappers, as upstream runtimes do."""

    def test_wrappers_are_seen_through(self):
        for decorators in ("@plain", "@wrapped", "@timed('x')", "@plain\n    @wrapped", "@wrapped\n    @timed('y')"):
            source = DECORATORS + (
                "class Predictor(BasePredictor):\n"
                "    %s\n    def setup(self) -> None:\n        self.k = 2\n"
                "    %s\n    def predict(self, n: int = Input(ge=0, default=1), s: str = 'a') -> List[str]:\n"
                "        return [s] * n * self.k\n") % (decorators, decorators)
            doc = document(source)
            schemas = doc["components"]["schemas"]
            self.assertEqual(list(schemas["Input"]["properties"]), ["n", "s"], decorators)
            self.assertEqual(schemas["Input"]["properties"]["n"]["minimum"], 0.0, decorators)
            self.assertEqual(schemas["Output"]["items"], {"type": "string"}, decorators)

    def test_a_decorated_function_predictor(self):
        doc = document(DECORATORS + "@plain\ndef predict(x: float) -> float:\n    return x\n",
                       ref="predict.py:predict")
        self.assertEqual(doc["components"]["schemas"]["Input"]["required"], ["x"])

    def test_a_wrapper_without_a_closure_is_still_refused(self):
        source = ("def predict_impl(self, x: int) -> int:\n    return x\n\n"
                  "class Predictor(BasePredictor):\n"
                  "    def predict(self, *args, **kwargs) -> int:\n        return predict_impl(self, *args, **kwargs)\n")
        with self.assertRaises(SchemaError) as raised:
            document(source)
        self.assertIn("*args and **kwargs are not supported", str(raised.exception))


class DefinitionErrorsTest(unittest.TestCase):
    """A signature that cannot be served is refused with a message that says what to change."""

    def assertRefused(self, signature, *fragments, extra=""):
        with self.assertRaises(SchemaError) as raised:
            document(predictor(signature, extra=extra))
        for fragment in fragments:
            self.assertIn(fragment, str(raised.exception))

    def test_any_with_default_none_is_taken_and_nullable(self):
        doc = document(predictor("def predict(self, x: Any = Input(default=None)) -> str:"))
        prop = doc["components"]["schemas"]["Input"]["properties"]["x"]
        self.assertTrue(prop["nullable"])
        self.assertNotIn("default", prop)

    def test_default_none_on_a_non_optional_type_shows_the_fix(self):
        with self.assertRaises(SchemaError) as raised:
            document(predictor("def predict(self,\n        prompt: str = Input(default=None),\n    ) -> str:"))
        message = str(raised.exception)
        self.assertIn("predict.py:", message)
        self.assertIn("prompt: str = Input(default=None)", message)
        self.assertIn("prompt: Optional[str] = Input(default=None)", message)

    def test_missing_annotation(self):
        self.assertRefused("def predict(self, prompt) -> str:", "input 'prompt' has no type annotation")

    def test_missing_return_annotation(self):
        self.assertRefused("def predict(self, prompt: str):", "no return annotation", "-> str")

    def test_star_args(self):
        self.assertRefused("def predict(self, *args: str) -> str:", "*args and **kwargs")
        self.assertRefused("def predict(self, **kwargs: str) -> str:", "*args and **kwargs")

    def test_unsupported_types_and_unions(self):
        self.assertRefused("def predict(self, x: complex) -> str:", "input 'x'", "unsupported type complex")
        self.assertRefused("def predict(self, x: int | str) -> str:", "input 'x'", "unions")
        self.assertRefused("def predict(self) -> set:", "output", "unsupported type set")
        self.assertRefused("def predict(self, x: Iterator[str]) -> str:", "input 'x'", "only be an output")
        self.assertRefused("def predict(self, x: Dict[int, str]) -> str:", "dict keys must be str")

    def test_constraints_on_incompatible_types(self):
        self.assertRefused("def predict(self, x: str = Input(ge=1)) -> str:", "input 'x'", "ge/le")
        self.assertRefused("def predict(self, x: int = Input(max_length=3)) -> str:", "input 'x'", "min_length")
        self.assertRefused("def predict(self, x: float = Input(regex='a')) -> str:", "input 'x'", "regex")
        self.assertRefused("def predict(self, x: str = Input(regex='(')) -> str:", "not a valid regular expression")

    def test_bad_choices(self):
        self.assertRefused("def predict(self, x: str = Input(choices=['a'])) -> str:", "at least two")
        self.assertRefused("def predict(self, x: str = Input(choices=['a', 1])) -> str:", "one type")
        self.assertRefused("def predict(self, x: int = Input(choices=['a', 'b'])) -> str:", "must be int values")
        self.assertRefused("def predict(self, x: int = Input(choices=[1, 2], ge=0)) -> str:", "cannot be combined")
        self.assertRefused("def predict(self, x: float = Input(choices=[1.0, 2.0])) -> str:", "input 'x'",
                           "choices are only for str and int inputs (as in Cog), not float",
                           "make it a str input with choices=['1.0', '2.0']")

    def test_defaults_that_break_their_own_constraints(self):
        self.assertRefused("def predict(self, x: int = Input(default=0, ge=1)) -> str:", "default 0", "ge=1")
        self.assertRefused("def predict(self, x: float = Input(default=3.5, le=2)) -> str:", "le=2")
        self.assertRefused("def predict(self, x: str = Input(default='ab', min_length=3)) -> str:", "min_length=3")
        self.assertRefused("def predict(self, x: str = Input(default='abcd', max_length=3)) -> str:", "max_length=3")
        self.assertRefused("def predict(self, x: str = Input(default='A', regex='^[a-z]+$')) -> str:", "regex")
        self.assertRefused("def predict(self, x: str = Input(default='c', choices=['a', 'b'])) -> str:",
                           "not one of the choices")

    def test_nested_lists_take_constraints_for_their_innermost_elements(self):
        props = document(predictor("def predict(self, grid: List[List[int]] = Input(ge=0)) -> str:"))
        self.assertEqual(props["components"]["schemas"]["Input"]["properties"]["grid"]["minimum"], 0.0)
        self.assertRefused("def predict(self, grid: List[List[int]] = Input(default=[[1], [2, -1]], ge=0)) -> str:",
                           "item [1][1] of the default, -1, is less than ge=0")

    def test_list_defaults_meet_their_constraints_item_by_item(self):
        self.assertRefused("def predict(self, xs: List[int] = Input(default=[10, 0, 100], ge=10)) -> str:",
                           "input 'xs'", "item [1]", "0", "ge=10")
        self.assertRefused("def predict(self, xs: List[float] = Input(default=[0, 100], le=50)) -> str:",
                           "item [1]", "le=50")
        self.assertRefused("def predict(self, xs: List[str] = Input(default=['abc', 'a'], min_length=2)) -> str:",
                           "item [1]", "'a'", "min_length=2")
        self.assertRefused("def predict(self, xs: List[str] = Input(default=['abcd'], max_length=3)) -> str:",
                           "item [0]", "max_length=3")
        self.assertRefused("def predict(self, xs: List[int] = Input(default_factory=lambda: [1, 50], le=10)) -> str:",
                           "item [1]", "le=10")
        # Items that meet them load.
        document(predictor("def predict(self, xs: List[int] = Input(default=[10, 20], ge=10)) -> str:"))

    def test_default_factory_that_raises_or_makes_no_json(self):
        self.assertRefused("def predict(self, x: List[int] = Input(default_factory=lambda: 1 / 0)) -> str:",
                           "input 'x'", "default_factory raised ZeroDivisionError")
        self.assertRefused("def predict(self, x: Any = Input(default_factory=object)) -> str:",
                           "input 'x'", "no JSON value")

    def test_iterators_without_a_type_argument(self):
        for annotation in ("Iterator", "AsyncIterator", "ConcatenateIterator"):
            self.assertRefused("def predict(self) -> %s:" % annotation, "output: %s needs the type" % annotation,
                               "-> %s[str]" % annotation)
        import_abc = "import collections.abc\n"
        self.assertRefused("def predict(self) -> collections.abc.Iterator:", "Iterator needs the type",
                           extra=import_abc)

    def test_optional_output(self):
        for annotation in ("Optional[str]", "str | None", "Optional[List[int]]"):
            self.assertRefused("def predict(self) -> %s:" % annotation, "an output cannot be Optional")

    def test_predict_without_self_on_a_class(self):
        with self.assertRaises(SchemaError) as raised:
            document(predictor("def predict(text: str) -> str:"))
        message = str(raised.exception)
        self.assertIn("Predictor.predict() does not take self first", message)
        self.assertIn("input 'text'", message)
        self.assertIn("def predict(text: str) -> str:", message)
        self.assertIn("def predict(self, text: str) -> str:", message)
        self.assertIn("predict.py:", message)
        self.assertRefused("def predict() -> str:", "does not take self first", "def predict(self) -> str:")
        # A staticmethod takes no instance: its first parameter is an input.
        doc = document("class Predictor(BasePredictor):\n    @staticmethod\n"
                       "    def predict(text: str) -> str:\n        return text\n")
        self.assertEqual(list(doc["components"]["schemas"]["Input"]["properties"]), ["text"])
        # The instance may have another name than self.
        doc = document(predictor("def predict(this, text: str) -> str:"))
        self.assertEqual(list(doc["components"]["schemas"]["Input"]["properties"]), ["text"])

    def setup_refused(self, setup, *fragments):
        source = ("class Predictor(BasePredictor):\n    %s\n        pass\n"
                  "    def predict(self) -> str:\n        return ''\n" % setup)
        with self.assertRaises(SchemaError) as raised:
            document(source)
        for fragment in fragments:
            self.assertIn(fragment, str(raised.exception))

    def test_setup_mistakes(self):
        self.setup_refused("def setup(self, *args):", "Predictor.setup(): *args and **kwargs",
                           "def setup(self):")
        self.setup_refused("def setup(self, **kwargs) -> None:", "*args and **kwargs")
        self.setup_refused("def setup(self) -> str:", "Predictor.setup() is annotated to return str",
                           "def setup(self) -> None:")
        self.setup_refused("def setup(self) -> bool:", "return bool")
        self.setup_refused("def setup() -> None:", "Predictor.setup() does not take self first")
        self.setup_refused("def setup(self, model_name) -> None:", "'model_name'", "give it a default")
        for fine in ("def setup(self) -> None:", "def setup(self):", "def setup(self, weights=None):",
                     "def setup(self, weights: Optional[Path] = None) -> None:", "async def setup(self) -> None:"):
            document("class Predictor(BasePredictor):\n    %s\n        pass\n"
                     "    def predict(self) -> str:\n        return ''\n" % fine)

    def test_cog_file_is_gone(self):
        with self.assertRaises(ImportError) as raised:
            document("from cog import File\n" + predictor("def predict(self, f: File) -> str:"))
        self.assertIn("cog.Path", str(raised.exception))


if __name__ == "__main__":
    unittest.main()
