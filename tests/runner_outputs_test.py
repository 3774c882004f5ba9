"""The runner's part of files across a sidecar's shared volume
(outputs.SharedDir): a Path output that is elsewhere is put into the
prediction's directory on the volume, under its own name, once; one already
there is named as it is; what cannot be put there fails the prediction saying
why (OutputError)."""

import os
import pathlib
import shutil
import tempfile
import unittest

from cog import Path
from cog_runner import outputs


class SharedDirTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cog-shared-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.volume = os.path.join(self.tmp, "volume")  # the server's directory, made by it
        os.mkdir(self.volume)
        self.model_tmp = os.path.join(self.tmp, "model")
        os.mkdir(self.model_tmp)
        os.mkdir(os.path.join(self.volume, "p7"))  # the prediction's directory, made by the server
        self.shared = outputs.SharedDir(os.path.join(self.volume, "p7"))
        token = outputs.shared_dir.set(self.shared)
        self.addCleanup(outputs.shared_dir.reset, token)

    def write(self, name, text):
        path = os.path.join(self.model_tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def encode(self, value):
        files = []
        return outputs.encode_output(value, files), files

    def test_a_file_elsewhere_is_put_on_the_volume_once_under_its_name(self):
        path = self.write("cat photo.png", "meow")
        value, files = self.encode({"a": Path(path), "b": [Path(path)]})
        self.assertEqual(files, ["/a", "/b/0"])
        self.assertEqual(value["a"], value["b"][0], "the same file is put there once")
        placed = pathlib.Path(value["a"][len("file://"):].replace("%20", " "))
        self.assertEqual(placed, pathlib.Path(self.volume, "p7", "out0", "cat photo.png"))
        self.assertEqual(placed.read_text(), "meow")
        os.remove(path)
        self.assertEqual(placed.read_text(), "meow", "a copy or a link, not the model's name")

    def test_a_file_already_on_the_volume_is_named_as_it_is(self):
        inside = os.path.join(self.shared.path, "input.txt")
        with open(inside, "w") as f:
            f.write("input")
        value, _ = self.encode(Path(inside))
        self.assertEqual(value, pathlib.Path(inside).as_uri())
        self.assertEqual(os.listdir(self.shared.path), ["input.txt"])

    def test_a_link_is_followed_and_keeps_the_name_the_model_gave(self):
        target = self.write("blob-1234", "data")
        link = os.path.join(self.model_tmp, "result.txt")
        os.symlink(target, link)
        value, _ = self.encode(Path(link))
        self.assertTrue(value.endswith("/p7/out0/result.txt"), value)
        self.assertFalse(os.path.islink(value[len("file://"):]))

    def test_what_cannot_be_put_there_fails_saying_why(self):
        with self.assertRaisesRegex(outputs.OutputError, r"^the output file \S+ is a directory: return the Path"):
            self.encode(Path(self.model_tmp))
        with self.assertRaisesRegex(outputs.OutputError, r"^cannot read the output file \S+/gone.txt: No such file"):
            self.encode(Path(os.path.join(self.model_tmp, "gone.txt")))
        shutil.rmtree(self.volume)  # not mounted in this container, or the prediction ended and it went
        with self.assertRaisesRegex(outputs.OutputError, r"cannot copy the output file \S+/a.txt into \S+/p7, "
                                    r"the directory cog-server shares with this runner .*--files-dir.*"
                                    r"No such file or directory$"):
            self.encode(Path(self.write("a.txt", "x")))
        self.assertFalse(os.path.exists(self.volume), "the server's directory is not made here")

    def test_without_a_shared_directory_files_are_named_where_they_are(self):
        outputs.shared_dir.set(None)
        path = self.write("here.txt", "x")
        value, files = self.encode(Path(path))
        self.assertEqual((value, files), (pathlib.Path(path).as_uri(), [""]))


class EncodeOutputTest(unittest.TestCase):
    def test_enums_and_datetimes_as_legacy_cog_writes_them(self):
        import datetime
        import enum

        class Color(enum.Enum):
            RED = "red"
            SIZE = 3

        value = outputs.encode_output({
            "c": Color.RED, "n": Color.SIZE, "at": datetime.datetime(2026, 12, 7, 19, 0, 5, 120000),
            "day": datetime.date(2026, 1, 2), "t": datetime.time(1, 2, 3)})
        self.assertEqual(value, {"c": "red", "n": 3, "at": "2026-12-07T19:00:05.120000", "day": "2026-01-02",
                                 "t": "01:02:03"})
        with self.assertRaisesRegex(TypeError, "cannot be turned into JSON"):
            outputs.encode_output(object())


if __name__ == "__main__":
    unittest.main()
