"""What the runner accepts and refuses when it loads a predictor, through the
real server: decorated methods are seen through, default_factory defaults are
published and used, and each mistake upstream Cog catches at load fails setup
with a message that names what to change."""

import textwrap
import unittest

from server_harness import CogServer

COG_YAML = 'predict: "predict.py:Predictor"\n'

HEADER = """\
import functools
from typing import Iterator, List, Optional
from cog import BasePredictor, Input
"""

DECORATED = HEADER + textwrap.dedent("""\
    def faster(f):
        def wrapper(*args, **kwargs):
            print("wrapped", f.__name__)
            return f(*args, **kwargs)
        return wrapper

    def logged(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            return f(*args, **kwargs)
        return wrapper

    class Predictor(BasePredictor):
        @faster
        def setup(self, weights=None) -> None:
            self.suffix = "!"

        @logged
        @faster
        def predict(self, text: str = Input(description="what to shout", max_length=10),
                    times: int = Input(default=2, ge=1, le=5),
                    f3: List[float] = Input(default_factory=lambda: [3, 4])) -> str:
            return " ".join([text.upper() + self.suffix] * times) + " %s" % sum(f3)
    """)


def bad(setup: str = "def setup(self) -> None:", predict: str = "def predict(self) -> str:",
        body: str = "return ''") -> str:
    return HEADER + "\nclass Predictor(BasePredictor):\n    %s\n        pass\n\n    %s\n        %s\n" % (
        setup, predict, body)


class LoadTest(unittest.TestCase):
    def test_a_decorated_predictor_serves_with_its_own_schema(self):
        server = CogServer(files={"cog.yaml": COG_YAML, "predict.py": DECORATED})
        try:
            health = server.wait_for_status("READY")
            self.assertIn("wrapped setup\n", health["setup"]["logs"])
            status, _, document = server.request("GET", "/openapi.json")
            self.assertEqual(status, 200)
            properties = document["components"]["schemas"]["Input"]["properties"]
            self.assertEqual(list(properties), ["text", "times", "f3"])
            self.assertEqual(properties["text"]["maxLength"], 10)
            self.assertEqual(properties["times"]["default"], 2)
            self.assertEqual(properties["f3"]["default"], [3, 4])
            self.assertEqual(document["components"]["schemas"]["Input"]["required"], ["text"])

            status, _, body = server.request("POST", "/predictions", {"input": {"text": "hi"}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], "HI! HI! 7")
            self.assertEqual(body["logs"], "wrapped predict\n")
            status, _, body = server.request("POST", "/predictions", {"input": {"text": "hi", "times": 1,
                                                                                "f3": [0.5]}})
            self.assertEqual(body["output"], "HI! 0.5")
            # The constraints of the decorated function hold.
            status, _, body = server.request("POST", "/predictions", {"input": {"text": "hi", "times": 9}})
            self.assertEqual(status, 422, body)
            self.assertEqual(body["detail"][0]["loc"], ["body", "input", "times"])
        finally:
            self.assertEqual(server.stop(), 0)

    def assertRefusedAtLoad(self, source, *fragments):
        server = CogServer(files={"cog.yaml": COG_YAML, "predict.py": source})
        try:
            health = server.wait_for_status("SETUP_FAILED")
            logs = health["setup"]["logs"]
            for fragment in fragments:
                self.assertIn(fragment, logs)
            status, _, body = server.request("POST", "/predictions", {"input": {}})
            self.assertEqual(status, 503, body)
        finally:
            server.stop()

    def test_each_load_time_mistake_fails_setup_saying_what_to_change(self):
        cases = {
            "list default": (bad(predict="def predict(self, xs: List[int] = Input(default=[0, 100], ge=10)) -> str:"),
                             "input 'xs': item [0] of the default, 0, is less than ge=10"),
            "bare Iterator": (bad(predict="def predict(self) -> Iterator:", body="yield ''"),
                              "output: Iterator needs the type of what it yields, e.g. -> Iterator[str]"),
            "Optional output": (bad(predict="def predict(self) -> Optional[str]:"),
                                "predict() returns Optional[str]: an output cannot be Optional. Return str"),
            "no self": (bad(predict="def predict(text: str) -> str:"),
                        "Predictor.predict() does not take self first",
                        "def predict(self, text: str) -> str:"),
            "setup *args": (bad(setup="def setup(self, *args, **kwargs):"),
                            "Predictor.setup(): *args and **kwargs are not supported", "def setup(self):"),
            "setup returns": (bad(setup="def setup(self) -> str:"),
                              "Predictor.setup() is annotated to return str", "def setup(self) -> None:"),
        }
        for name, (source, *fragments) in cases.items():
            with self.subTest(name):
                self.assertRefusedAtLoad(source, *fragments)


if __name__ == "__main__":
    unittest.main()
