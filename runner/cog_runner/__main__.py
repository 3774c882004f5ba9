"""python -m cog_runner --socket PATH --working-directory DIR --predict predict.py:Predictor"""

import argparse
import sys

from .worker import Worker


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cog_runner", description=__doc__)
    parser.add_argument("--socket", required=True, help="the Unix socket cog-server listens on")
    parser.add_argument("--working-directory", default=".", help="the model's directory")
    parser.add_argument("--predict", default="", help='e.g. "predict.py:Predictor"')
    parser.add_argument("--train", default="", help='e.g. "train.py:train"')
    parser.add_argument("--max-concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    worker = Worker(args.socket, args.working_directory, args.predict, args.train,
                    args.max_concurrency)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
