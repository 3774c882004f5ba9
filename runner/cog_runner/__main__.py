"""The Python runner of cog-server, and tools over a model directory.

  python3 -m cog_runner --socket PATH [--working-directory DIR] [--predict REF] [--train REF]
      serve predictions for cog-server (REF like predict.py:Predictor; without
      --predict/--train they are read from DIR/cog.yaml)
  python3 -m cog_runner schema [DIR]    print the model's OpenAPI document
  python3 -m cog_runner test [DIR]      run setup() and one prediction on test_inputs
"""

import argparse
import sys

from . import guardian


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("schema", "test"):
        from . import cli
        return cli.main(argv)
    parser = argparse.ArgumentParser(prog="cog_runner", description=__doc__)
    parser.add_argument("--socket", required=True, help="the Unix socket cog-server listens on")
    parser.add_argument("--working-directory", default=".", help="the model's directory")
    parser.add_argument("--predict", default="", help='e.g. "predict.py:Predictor"')
    parser.add_argument("--train", default="", help='e.g. "train.py:train"')
    parser.add_argument("--max-concurrency", type=int, default=1)
    args = parser.parse_args(argv)
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
