# Outputs and prints that once broke the runner or the server: NaN and
# infinity, outputs over the frame limit, carriage-return progress bars.
import os
import signal
import sys
import tempfile
import time
from typing import Any, Iterator

from cog import BaseModel, BasePredictor, Path, current_scope


class Scores(BaseModel):
    name: str
    values: list


def _items(values: list) -> Iterator[Any]:
    yield from values


# str items of every shape JSON has to escape, and the lengths around the
# runner's limit for holding an item with others (256 characters).
TEXTS = ['"quoted"', "back\\slash", "new\nline", "\x01\x1f\x7f", "é ✓ 😀", "x" * 256, "y" * 257, ""]


def _texts(n: int, surrogate: bool) -> Iterator[Any]:
    if surrogate:  # in the middle of str items that may travel in one frame with it
        yield from ["before", "lone \ud800", "after"]
    yield from TEXTS
    yield 1
    yield None
    yield {"a": "b"}
    print("a print between items")
    for i in range(n):
        yield "t%d" % i
    time.sleep(0.06)  # longer than the runner holds items
    yield "after a pause"


def _texts_then_raise(n: int) -> Iterator[str]:
    for i in range(n):
        yield "t%d" % i
    raise ValueError("the model's own error after %d items" % n)


def _endless() -> Iterator[str]:
    while True:  # a model that never stops yielding
        yield "token"


def _endless_deaf() -> Iterator[str]:
    # Deaf to its cancel: the runner hears of one through SIGIO.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
    while True:
        yield "token"


def _endless_files(size: int) -> Iterator[Path]:
    folder = tempfile.mkdtemp()
    i = 0
    while True:  # each file becomes a data: URI of the whole file
        path = os.path.join(folder, "f%d.bin" % i)
        with open(path, "wb") as f:
            f.write(b"\0" * size)
        yield Path(path)
        i += 1


def _accumulating(n: int) -> Iterator[Any]:
    # str items first, so that the runner takes the next ones in long runs;
    # then one list, changed after each time it is yielded.
    for i in range(n):
        yield "t%d" % i
    acc: list = []
    for i in range(5):
        acc.append(i)
        yield acc
    yield "end"


class Predictor(BasePredictor):
    def predict(self, kind: str, n: int = 0) -> Any:
        if kind == "nan":
            return float("nan")
        if kind == "inf_in_list":
            return [1.0, 2.0, float("inf")]
        if kind == "nan_in_dict":
            return {"ok": 1, "scores": {"mean": float("-inf")}}
        if kind == "nan_in_object":
            return [Scores(name="a", values=[0.5, float("nan")])]
        if kind == "nan_item":
            return _items([0.5, 1.5, float("nan")])
        if kind == "nan_metric":
            current_scope().record_metric("loss", [0.1, float("nan")])
            return "unreachable"
        if kind == "big":
            return "x" * n
        if kind == "big_item":
            return _items(["small", "y" * n])
        if kind == "big_log":
            print("z" * n)
            return "printed"
        if kind == "progress":
            # What tqdm writes: each redraw starts with "\r"; the bar ends with "\n".
            for i in range(n):
                sys.stderr.write("\r%d/%d" % (i + 1, n))
            sys.stderr.write("\n")
            print("after", end="")  # a final line without "\n" is kept too
            return "done"
        if kind == "endless":
            return _endless()
        if kind == "endless_deaf":
            return _endless_deaf()
        if kind == "endless_files":
            return _endless_files(n)
        if kind == "accumulating":
            return _accumulating(n)
        if kind == "texts_then_raise":
            return _texts_then_raise(n)
        if kind in ("texts", "texts_surrogate"):
            return _texts(n, kind == "texts_surrogate")
        if kind == "surrogate_output":  # a str that is not valid Unicode, alone or nested
            return "lone \udc80" if n == 0 else {"a": ["ok \ud83d\ude00", "lone \ud800"]}
        if kind == "surrogate":
            print("name: \udcff")  # undecodable bytes of a file name, as os.listdir gives them
            return "survived"
        return kind
