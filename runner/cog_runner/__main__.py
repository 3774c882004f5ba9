"""The Python runner of cog-server, and tools over a model directory.

  python3 -m cog_runner --socket PATH [--working-directory DIR] [--predict REF] [--train REF]
      serve predictions for cog-server (REF like predict.py:Predictor; without
      --predict/--train they are read from DIR/cog.yaml)
  python3 -m cog_runner schema [DIR]    print the model's OpenAPI document
  python3 -m cog_runner test [DIR]      run setup() and one prediction on test_inputs
"""

import sys
import types
from typing import Any, List, Optional

from . import guardian

_DEFAULTS = {"socket": None, "working_directory": ".", "predict": "", "train": "", "max_concurrency": 1}
_FLAGS = {"--" + name.replace("_", "-"): name for name in _DEFAULTS}


def _parse(argv: List[str]) -> Any:
    """The flags' values as attributes (socket, working_directory, predict, train,
    max_concurrency)."""
    args = _parse_quickly(argv)
    if args is not None:
        return args
    import argparse  # help, and the errors argparse explains
    parser = argparse.ArgumentParser(prog="cog_runner", description=__doc__)
    parser.add_argument("--socket", required=True, help="the Unix socket cog-server listens on")
    parser.add_argument("--working-directory", default=".", help="the model's directory")
    parser.add_argument("--predict", default="", help='e.g. "predict.py:Predictor"')
    parser.add_argument("--train", default="", help='e.g. "train.py:train"')
    parser.add_argument("--max-concurrency", type=int, default=1)
    return parser.parse_args(argv)


def _parse_quickly(argv: List[str]) -> Optional[types.SimpleNamespace]:
    """The flags as cog-server passes them (`--flag value` or `--flag=value`), without
    argparse: importing it (and the gettext, locale and shutil it pulls in) took ~11 ms
    of every start on a slow machine. None for anything else (help, abbreviations,
    unknown flags, missing values), which argparse then parses or explains."""
    values = dict(_DEFAULTS)
    i = 0
    while i < len(argv):
        flag, equals, value = argv[i].partition("=")
        name = _FLAGS.get(flag)
        if name is None:
            return None
        if not equals:
            if i + 1 == len(argv) or argv[i + 1].startswith("-"):
                return None
            i += 1
            value = argv[i]
        i += 1
        if name == "max_concurrency":
            try:
                value = int(value)
            except ValueError:
                return None
        values[name] = value
    return types.SimpleNamespace(**values) if values["socket"] is not None else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("schema", "test"):
        from . import cli
        return cli.main(argv)
    args = _parse(argv)
    if not args.predict and not args.train:
        from . import cog_yaml
        config = cog_yaml.load(args.working_directory)
        args.predict, args.train = config.predict, config.train
        args.max_concurrency = max(args.max_concurrency, config.max_concurrency)
    guardian.guard()  # from here on, this is the runner, with a guardian for its subprocesses
    from .worker import Worker
    worker = Worker(args.socket, args.working_directory, args.predict, args.train,
                    args.max_concurrency)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
