"""Every OpenAPI document legacy Cog generated (golden/openapi/) is reproduced,
field for field after a JSON round trip, by the predictor written for it
(schema_corpus/<name>/predict.py), through the runner's own schema code."""

import json
import os
import sys
import unittest

from cog_runner.predictor_ref import load
from cog_runner.schema import predictor_document

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "openapi")
CORPUS = os.path.join(HERE, "schema_corpus")


def document_for(name: str):
    directory = os.path.join(CORPUS, name.replace("-", "_"))
    sys.modules.pop("predict", None)  # every corpus entry is a module named predict
    sys.path[:] = [p for p in sys.path if not p.startswith(CORPUS)]
    loaded = load("predict.py:Predictor", directory)
    return json.loads(json.dumps(predictor_document(loaded.signature_source, loaded.is_method)))


class SchemaGoldenTest(unittest.TestCase):
    def test_every_golden_document_has_a_predictor(self):
        goldens = sorted(f[:-5].replace("-", "_") for f in os.listdir(GOLDEN))
        self.assertEqual(goldens, sorted(os.listdir(CORPUS)))


def _make_test(name: str):
    def test(self):
        with open(os.path.join(GOLDEN, name + ".json")) as f:
            expected = json.load(f)
        actual = document_for(name)
        # Compare the model's own components first for a readable failure.
        for component in ("Input", "Output"):
            self.assertEqual(actual["components"]["schemas"].get(component),
                             expected["components"]["schemas"].get(component), component)
        self.assertEqual(actual, expected)
    return test


for _file in sorted(os.listdir(GOLDEN)):
    _name = _file[:-5]
    setattr(SchemaGoldenTest, "test_" + _name.replace("-", "_"), _make_test(_name))


if __name__ == "__main__":
    unittest.main()
