"""The three keys of cog.yaml the runner needs, read without a YAML library.

cog-server parses cog.yaml fully (yaml-cpp) and passes --predict/--train; this
reader serves the command-line tools and a runner started on its own (sidecar).
It understands top-level `predict:` and `train:` scalars and `concurrency:` with
an indented `max:`, quoted or not, with comments; everything else is ignored.
"""

import os
import re
from dataclasses import dataclass

_KEY = re.compile(r"^(\s*)([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")


@dataclass
class CogYaml:
    predict: str = ""
    train: str = ""
    max_concurrency: int = 1


def _scalar(text: str) -> str:
    text = text.strip()
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        return text[1:end] if end > 0 else text[1:]
    return text.split(" #", 1)[0].strip()


def parse(text: str) -> CogYaml:
    config = CogYaml()
    section = ""
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _KEY.match(raw)
        if match is None:
            continue
        indent, key, value = match.groups()
        if not indent:
            section = key
            if key in ("predict", "train"):
                setattr(config, key, _scalar(value))
        elif section == "concurrency" and key == "max":
            try:
                config.max_concurrency = int(_scalar(value))
            except ValueError:
                raise ValueError("cog.yaml: 'concurrency.max' must be a whole number, not %r" % value)
    return config


def load(directory: str) -> CogYaml:
    path = os.path.join(directory, "cog.yaml")
    try:
        with open(path) as f:
            config = parse(f.read())
    except FileNotFoundError:
        raise FileNotFoundError("%s not found: run from the model's directory or name it" % path)
    if not config.predict and not config.train:
        raise ValueError("%s has neither 'predict' nor 'train': add e.g. predict: \"predict.py:Predictor\"" % path)
    return config
