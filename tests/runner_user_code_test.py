"""The runner's marker of user code (worker._UserCode) against a cancel raised
as user code is entered. SIGIO's handler runs wherever the interpreter checks
for signals (a call into Python code included) and, once user code has begun,
reads the Cancel and raises CancelationException there. Whatever raises while
entering, the runner must not be left believing user code runs: its SIGIO
handler would then read frames from inside the main loop's own reads."""

import signal
import socket
import sys
import types
import unittest

from cog.server.exceptions import CancelationException
from cog_runner import messages, wire
from cog_runner import worker as worker_module
from cog_runner.connection import Connection as RealConnection


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


class BatchedGeneratorTest(unittest.TestCase):
    """Worker._take_text_batched (a sync generator's items, taken from it
    several at a time by C code) against a cancel raised wherever SIGIO's
    handler can run while user code is marked: at any call or return. The
    cancel must come out, and the runner must not be left believing user
    code runs (its handler would then read frames inside the main loop's own
    reads, or raise outside any prediction)."""

    @staticmethod
    def items():
        for i in range(40):
            yield "t%d" % i
        acc = []
        for i in range(3):
            acc.append(i)
            yield acc
        yield "x" * 300
        yield "end"

    def run_batched(self, raise_at, batched=True):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        worker = worker_module.Worker("unused", ".", "predict.py:Predictor", "", 1)
        worker.conn = RealConnection(runner)
        self.addCleanup(worker.conn.close)
        events = 0

        def profile(frame, event, arg):
            nonlocal events
            if worker._in_user_code and event != "c_exception":
                events += 1
                if events == raise_at:
                    raise CancelationException("prediction canceled")

        sys.setprofile(profile)
        try:
            if batched:
                worker._take_text_batched("p", self.items(), False)
            else:  # each item sent as it comes, for a client that streams them
                worker._take_one_by_one("p", self.items(), False, False)
            raised = False
        except CancelationException:
            raised = True
        finally:
            sys.setprofile(None)
        return worker, raised, events

    def test_a_cancel_raised_anywhere_in_user_code_leaves_it(self):
        for batched in (True, False):
            _, raised, events = self.run_batched(0, batched)
            self.assertFalse(raised)
            self.assertGreater(events, 40)  # the profile saw user code run
            for raise_at in range(1, events + 1):
                with self.subTest(batched=batched, raise_at=raise_at):
                    worker, raised, _ = self.run_batched(raise_at, batched)
                    self.assertTrue(raised, "the cancel did not come out")
                    self.assertFalse(worker._in_user_code)


def cancel_frame(prediction_id):
    return bytes(wire.encode_member_frame(messages.SERVER_MESSAGE, "cancel", {"id": prediction_id},
                                          wire.LARGE_PAYLOAD))


class CancelBurstTest(unittest.TestCase):
    """A client that repeats its cancel: Cancel frames come while the first
    one's CancelationException unwinds. SIGIO's handler is run by hand where
    it ran when the runner died under such a burst (every 12 s run of one):
    in predict() (the cancel, raised); entering _UserCode.__exit__ as it
    unwinds (a second, raised before _in_user_code was reset); in
    _flush_logs() after _predict's try (a third, which escaped run(): the
    interpreter's exit then reset SIGIO's handler and the next SIGIO killed
    the process)."""

    def test_repeated_cancels_end_the_prediction_once_and_never_escape_it(self):
        server, runner = socket.socketpair()
        self.addCleanup(server.close)
        worker = worker_module.Worker("unused", ".", "predict.py:Predictor", "", 1)
        worker.conn = RealConnection(runner)
        self.addCleanup(worker.conn.close)
        handled = []

        def sigio():
            server.sendall(cancel_frame("p"))
            handled.append(len(handled))
            worker._on_input(signal.SIGIO, None)

        def predict():
            sigio()
            raise AssertionError("the first cancel did not raise")

        worker.predictor = types.SimpleNamespace(predict=predict)

        def profile(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "__exit__":
                sys.setprofile(None)
                sigio()

        flush_logs = worker._flush_logs

        def flush(owner, fds=True):
            sigio()
            flush_logs(owner, fds)

        worker._flush_logs = flush
        sys.setprofile(profile)
        try:
            worker._predict({"id": "p", "kind": messages.KIND_PREDICT, "input_json": b"", "context_json": b""})
        finally:
            sys.setprofile(None)
        self.assertEqual(len(handled), 3)
        self.assertFalse(worker._in_user_code)
        server.setblocking(False)
        name, fields = wire.decode_member(messages.RUNNER_MESSAGE, server.recv(1 << 16)[4:])
        self.assertEqual((name, fields.get("status")), ("done", messages.DONE_CANCELED))


if __name__ == "__main__":
    unittest.main()
