"""The runner and the SDK need nothing but the standard library.

Proved three ways: the command-line tools run under `python3 -I -S` (no
site-packages at all); the real cog-server serves predictions through a runner
started that way; and in an interpreter that has pydantic/typing_extensions/
protobuf around (Debian's has protobuf), none of them is ever imported.
"""

import glob
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

from server_harness import PREDICTORS, CogServer, _runfile

RUNNER = _runfile("runner")
FORBIDDEN = ("pydantic", "typing_extensions", "google", "requests", "attrs")


def isolated(code: str, *args: str) -> subprocess.CompletedProcess:
    prelude = "import sys; sys.path.insert(0, %r)\n" % RUNNER
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code, *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


class IsolationTest(unittest.TestCase):
    def test_no_site_packages_are_visible_in_the_isolated_interpreter(self):
        result = isolated("import sys; print([p for p in sys.path if 'packages' in p])")
        self.assertEqual(result.stdout.strip(), "[]", result.stderr)

    def test_schema_tool_runs_without_site_packages(self):
        result = isolated("from cog_runner.__main__ import main; sys.exit(main(['schema', %r]))"
                          % os.path.join(PREDICTORS, "types"))
        self.assertEqual(result.returncode, 0, result.stderr)
        document = json.loads(result.stdout)
        self.assertEqual(document["components"]["schemas"]["Input"]["required"], ["s"])

    def test_nothing_third_party_is_imported(self):
        code = textwrap.dedent("""
            import json, sys
            import cog, cog.server.exceptions
            import cog_runner.worker, cog_runner.cli, cog_runner.__main__
            from cog_runner.predictor_ref import load
            from cog_runner.schema import predictor_document
            loaded = load("predict.py:Predictor", %r)
            predictor_document(loaded.signature_source, True)
            print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
        """ % (os.path.join(PREDICTORS, "types"), FORBIDDEN))
        result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n%s" % (RUNNER, code)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), [])

    def test_the_runner_ships_its_bytecode(self):
        # Where Python may not write __pycache__ (PYTHONDONTWRITEBYTECODE, a read-only
        # directory), a runner without its build-time bytecode compiled every module at
        # every start: ~26 ms of start -> READY. Shipped: checked-hash .pyc files (Python
        # writes timestamp ones) of the sources as they are.
        sources = glob.glob(os.path.join(RUNNER, "**", "*.py"), recursive=True)
        self.assertGreater(len(sources), 15)
        for source in sources:
            with self.subTest(source=os.path.relpath(source, RUNNER)):
                with open(importlib.util.cache_from_source(source), "rb") as f:
                    header = f.read(16)
                with open(source, "rb") as f:
                    source_hash = importlib.util.source_hash(f.read())
                self.assertEqual(int.from_bytes(header[4:8], "little"), 0b11, "not a checked-hash .pyc")
                self.assertEqual(header[8:16], source_hash, "the bytecode of another source")
        code = "import sys; sys.path.insert(0, %r)\nimport cog_runner.worker, cog_runner.cli" % RUNNER
        result = subprocess.run([sys.executable, "-B", "-v", "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=60)
        compiled = [path for path in re.findall(r"^# code object from ([^'\n]+\.py)$", result.stderr, re.M)
                    if re.search(r"/(cog|cog_runner)/", path)]
        self.assertEqual(compiled, [], "compiled at import")

    def test_the_server_serves_through_an_isolated_runner(self):
        # cog-server runs `<python> -m cog_runner ...`; this interpreter wrapper
        # runs it with -I -S instead (which ignore PYTHONPATH), the runner on sys.path.
        wrapper_dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, wrapper_dir)
        wrapper = os.path.join(wrapper_dir, "isolated-python")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nshift 2\nexec %s -I -S -c 'import sys, runpy; sys.path.insert(0, \"%s\"); "
                    "sys.argv[0] = \"cog_runner\"; runpy.run_module(\"cog_runner\", run_name=\"__main__\")' \"$@\"\n"
                    % (sys.executable, RUNNER))
        os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IXUSR)
        server = CogServer("types", args=["--python", wrapper])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "iso"}})
            self.assertEqual((status, body["output"]), (200, "iso|2|0.5|False"))
        finally:
            self.assertEqual(server.stop(), 0)


class CommandLineTest(unittest.TestCase):
    def run_tool(self, *args):
        return subprocess.run([sys.executable, "-m", "cog_runner", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=RUNNER, PYTHONDONTWRITEBYTECODE="1"))

    def test_test_runs_the_predictor_on_its_test_inputs(self):
        result = self.run_tool("test", _runfile("examples/hello"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), "hello world")

    def test_test_says_which_inputs_are_missing(self):
        result = self.run_tool("test", os.path.join(PREDICTORS, "echo"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("required input(s) s", result.stderr)

    def test_schema_of_a_broken_predictor_explains(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        with open(os.path.join(directory, "cog.yaml"), "w") as f:
            f.write("# a comment\nbuild:\n  gpu: true\npredict: 'predict.py:Predictor'  # here\n")
        with open(os.path.join(directory, "predict.py"), "w") as f:
            f.write("from cog import BasePredictor, Input\n\nclass Predictor(BasePredictor):\n"
                    "    def predict(self, prompt: str = Input(default=None)) -> str:\n        return prompt\n")
        result = self.run_tool("schema", directory)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Optional[str]", result.stderr)

    def test_usage(self):
        result = self.run_tool("frobnicate")
        self.assertEqual(result.returncode, 2)


class RunnerFlagsTest(unittest.TestCase):
    """The runner's flags: read without argparse as cog-server passes them, and by
    argparse (help, errors) otherwise, with the same meaning either way."""

    def parse(self, *argv: str) -> dict:
        sys.path.insert(0, RUNNER)
        from cog_runner.__main__ import _parse
        return vars(_parse(list(argv)))

    def test_the_servers_flags_are_read_without_argparse(self):
        result = isolated("import sys\nfrom cog_runner.__main__ import _parse\n"
                          "args = _parse(sys.argv[1:])\nprint(sorted(vars(args).items()), 'argparse' in sys.modules)",
                          "--working-directory", "/m", "--predict", "predict.py:Predictor",
                          "--max-concurrency", "8", "--socket", "/s")
        self.assertEqual(result.stdout.strip(),
                         "[('max_concurrency', 8), ('predict', 'predict.py:Predictor'), ('socket', '/s'), "
                         "('train', ''), ('working_directory', '/m')] False", result.stderr)

    def test_both_spellings_and_defaults(self):
        self.assertEqual(self.parse("--socket=/s", "--train", "train.py:train", "--working-directory=a=b"),
                         {"socket": "/s", "working_directory": "a=b", "predict": "", "train": "train.py:train",
                          "max_concurrency": 1})
        self.assertEqual(self.parse("--socket", "/s", "--max-concurrency=+3")["max_concurrency"], 3)

    def test_what_the_quick_path_does_not_take_argparse_explains(self):
        for argv, message in [([], "the following arguments are required: --socket"),
                              (["--socket", "/s", "--max-concurrency", "many"],
                               "argument --max-concurrency: invalid int value: 'many'"),
                              (["--socket", "/s", "--max-concurrency", "\u00b2"],
                               "argument --max-concurrency: invalid int value: '\u00b2'"),
                              (["--socket", "--predict", "p.py:P"], "argument --socket: expected one argument"),
                              (["--socket", "/s", "--frobnicate", "1"], "unrecognized arguments: --frobnicate 1"),
                              (["--socket", "/s", "--max_concurrency", "2"],
                               "unrecognized arguments: --max_concurrency 2")]:
            with self.subTest(argv=argv):
                result = isolated("from cog_runner.__main__ import _parse\n_parse(sys.argv[1:])", *argv)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("cog_runner: error: " + message, result.stderr)
        # argparse's abbreviations still work.
        self.assertEqual(self.parse("--sock", "/s", "--max-conc", "2")["max_concurrency"], 2)


class CogYamlTest(unittest.TestCase):
    def test_reads_predict_train_and_concurrency(self):
        sys.path.insert(0, RUNNER)
        from cog_runner import cog_yaml
        config = cog_yaml.parse(textwrap.dedent("""
            build:
              python_version: "3.11"
              run:
                - "echo predict: no"
            predict: "predict.py:Predictor"   # the model
            train: 'train.py:train'
            concurrency:
              max: 4
        """))
        self.assertEqual((config.predict, config.train, config.max_concurrency),
                         ("predict.py:Predictor", "train.py:train", 4))


if __name__ == "__main__":
    unittest.main()
