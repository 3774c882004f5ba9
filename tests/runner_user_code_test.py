"""The runner's marker of user code (worker._UserCode) against a cancel raised
as user code is entered. SIGIO's handler runs wherever the interpreter checks
for signals (a call into Python code included) and, once user code has begun,
reads the Cancel and raises CancelationException there. Whatever raises while
entering, the runner must not be left believing user code runs: its SIGIO
handler would then read frames from inside the main loop's own reads."""

import types
import unittest

from cog.server.exceptions import CancelationException
from cog_runner import worker as worker_module


class Connection:
    """Stands in for cog_runner.connection.Connection: says frames wait, or
    raises as SIGIO's handler would, in has_frames()."""

    def __init__(self, frames_waiting=False, cancel_in_has_frames=False):
        self.frames_waiting = frames_waiting
        self.cancel_in_has_frames = cancel_in_has_frames

    def has_frames(self):
        if self.cancel_in_has_frames:
            raise CancelationException("prediction canceled")
        return self.frames_waiting


def fake_worker(conn, starts=lambda: None):
    return types.SimpleNamespace(_in_user_code=False, _sigio_held=False, _input_waiting=False,
                                 conn=conn, _user_code_starts=starts)


class UserCodeTest(unittest.TestCase):
    def test_user_code_is_marked_while_it_runs_and_after_it_raises(self):
        worker = fake_worker(Connection())
        user_code = worker_module._UserCode(worker)
        with user_code:
            self.assertTrue(worker._in_user_code)
        self.assertFalse(worker._in_user_code)
        with self.assertRaises(ValueError):
            with user_code:
                raise ValueError("the predictor's own error")
        self.assertFalse(worker._in_user_code)

    def test_a_cancel_raised_while_asking_for_waiting_frames_leaves_user_code(self):
        worker = fake_worker(Connection(cancel_in_has_frames=True))
        with self.assertRaises(CancelationException):
            with worker_module._UserCode(worker):
                self.fail("user code ran after its cancel")
        self.assertFalse(worker._in_user_code)

    def test_a_cancel_raised_by_reading_waiting_frames_leaves_user_code(self):
        def starts():
            raise CancelationException("prediction canceled")

        worker = fake_worker(Connection(frames_waiting=True), starts)
        with self.assertRaises(CancelationException):
            with worker_module._UserCode(worker):
                self.fail("user code ran after its cancel")
        self.assertFalse(worker._in_user_code)


if __name__ == "__main__":
    unittest.main()
