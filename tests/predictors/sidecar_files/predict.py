# Files across the sidecar's shared volume: an input file (downloaded by
# cog-server into its --files-dir) returned as it is, and files the model writes
# in its own container's /tmp, which the runner must copy to the shared volume.
import os
import tempfile
from typing import List, Optional

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def predict(self, text: str = "", image: Optional[Path] = None, kind: str = "tmp") -> List[Path]:
        outputs = []
        if image is not None:
            print("input at", image)
            outputs.append(image)
        if kind == "tmp":
            path = Path(os.path.join(tempfile.mkdtemp(), "out.txt"))
            path.write_text(text)
            outputs += [path, path]  # one file, returned twice
        elif kind == "directory":
            outputs.append(Path(tempfile.mkdtemp()))
        return outputs
