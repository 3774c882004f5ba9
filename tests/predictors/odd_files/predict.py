# Path outputs that are no plain file, or too large to become a data: URI:
# a directory, a named pipe nobody writes, a link to a device, a sparse file
# of `size` bytes (which costs the predictor no disk).
import os
import tempfile

from cog import BasePredictor, Path


class Predictor(BasePredictor):
    def predict(self, kind: str, size: int = 0) -> Path:
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "out.bin")
        if kind == "directory":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.symlink("/dev/zero", path)
        elif kind == "sparse":
            with open(path, "wb") as f:
                f.truncate(size)
        else:
            with open(path, "w") as f:
                f.write(kind)
        return Path(path)
