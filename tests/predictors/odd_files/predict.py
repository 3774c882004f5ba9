# Path outputs that are no plain file, or too large to become data: URIs:
# a directory, a named pipe nobody writes, a link to a device, `count`
# sparse files of `size` bytes (which cost the predictor no disk).
import os
import tempfile
from typing import List

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def predict(self, kind: str, size: int = 0, count: int = 1) -> List[Path]:
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "out.bin")
        if kind == "directory":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.symlink("/dev/zero", path)
        elif kind == "sparse":
            paths = []
            for i in range(count):
                paths.append(os.path.join(folder, "out%d.bin" % i))
                with open(paths[-1], "wb") as f:
                    f.truncate(size)
            return [Path(p) for p in paths]
        else:
            with open(path, "w") as f:
                f.write(kind)
        return [Path(path)]
