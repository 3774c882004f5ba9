"""The runner's main loop: load, hello, setup, then predictions until shutdown.

One thread does everything: it reads frames, runs setup() and predict(), and
sends frames back. A handoff between Python threads costs ~25 us each way, more
than a null prediction itself. While user code runs, the socket signals SIGIO
to this thread (see Connection.signal_on_input); the handler reads what
arrived, and a Cancel for the running prediction raises CancelationException
where predict() is. It never raises in the middle of sending a frame: then the
cancel waits until the frame is out.
"""

import contextvars
import inspect
import json
import os
import signal
import sys
import threading
import time
from itertools import groupby as _groupby
from itertools import islice as _islice
from typing import Any, Callable, Dict, Iterator, List, Optional

import cog
from cog import scope as cog_scope
from cog.server.exceptions import CancelationException

from . import messages, outputs, wire
from .coerce import input_converters
from .connection import _HOLD_SECONDS, HOLD_ITEMS, MAX_FRAME_BYTES, TEXT_ITEM_CHARS
from .connection import Connection, ConnectionClosed, Frame, FrameTooLarge
from .fd_capture import FdCapture
from .log_capture import LogStream
from .outputs import OutputError, encode_output_fields, encode_output_json, output_text, too_large
from .predictor_ref import LoadedPredictor, load, unwrap
from .schema import predictor_document

RUNNER_VERSION = "0.1.0"

# What predict() returns when it neither yields nor must be awaited.
_PLAIN_OUTPUTS = (str, int, float, bool, type(None), dict, list)
_SIGIO = {signal.SIGIO}
_monotonic = time.monotonic
# A run of a batched generator's items (_take_text_batched) taken in less than
# this: the next run may be twice as long.
_QUICK_RUN_SECONDS = 0.005

# What next() of a run's groups gives once they are all taken.
_NO_GROUP = (None, None)
# The prediction an asyncio task works for (async predictors run several at once).
_task_prediction: "contextvars.ContextVar[str]" = contextvars.ContextVar("cog_prediction", default="")


class _UserCode:
    """Worker._user_code (never nested). A class rather than a
    @contextmanager: a generator enters it once per item, and the generator
    machinery cost ~2 us each time."""

    __slots__ = ("_worker",)

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker

    def __enter__(self) -> None:
        worker = self._worker
        worker._in_user_code = True
        # has_frames() inside the try too: SIGIO's handler may run as it is
        # called (in user code now) and raise the cancel.
        try:
            if worker._sigio_held or worker._input_waiting or worker.conn.has_frames():
                worker._user_code_starts()
        except BaseException:
            worker._in_user_code = False
            raise

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self._worker._in_user_code = False


class Worker:
    def __init__(self, socket_path: str, working_directory: str, predict_ref: str,
                 train_ref: str, max_concurrency: int) -> None:
        self.socket_path = socket_path
        self.working_directory = os.path.abspath(working_directory)
        self.predict_ref = predict_ref
        self.train_ref = train_ref
        self.max_concurrency = max_concurrency
        self.conn: Optional[Connection] = None
        self.predictor: Optional[LoadedPredictor] = None
        self.trainer: Optional[LoadedPredictor] = None
        self._converters: Dict[str, Dict[str, Callable[[Any], Any]]] = {}
        self._running_id = ""      # the prediction whose user code may run now
        self._in_user_code = False
        self._cancel_pending = False
        # The running prediction's cancel was raised: it is never raised twice
        # (another, while the first unwinds, would escape _predict's try).
        self._cancel_raised = False
        # _take_control_frames is reading: SIGIO's handler must not read (or
        # raise) inside that read, nested; it leaves the input to it.
        self._reading = False
        self._input_waiting = False  # SIGIO came while this thread was mid-send or outside user code
        self._sigio_held = False  # SIGIO blocked until user code runs again (_on_input)
        self._stopping = False     # Shutdown received, or the server went away
        self._deferred: List[Frame] = []
        self._healthchecks: List[int] = []
        self._stdout: Optional[LogStream] = None
        self._stderr: Optional[LogStream] = None
        self._fds: Optional[FdCapture] = None
        # `with self._user_code:` marks where a cancel may interrupt: the predictor's own code.
        self._user_code = _UserCode(self)
        # Encodes the Output frame of a str item for the prediction it was made for.
        self._item_encoder: Optional[Callable[[bytes], bytearray]] = None
        self._item_encoder_id = ""

    # ---- frames out ----

    def send(self, name: str, fields: Dict[str, Any], hold: bool = False) -> None:
        """Sends a frame (see Connection.send for `hold`). FrameTooLarge if it is
        over the server's limit even with its error message (an exception's
        text can be of any size) cut short."""
        if self.conn is None:
            return
        try:
            try:
                self.conn.send(name, fields, hold)
            except FrameTooLarge as e:
                if not fields.get("error"):
                    raise
                self.conn.send(name, dict(fields, error=_clip(fields["error"], e.limit // 8)))
        except OSError:
            self._stopping = True  # the server is gone; the main loop ends
            return
        self._after_send()

    def _after_send(self) -> None:
        if (self._in_user_code and self._input_waiting
                and threading.current_thread() is threading.main_thread()):
            # Input arrived while the frame was going out (see _on_input): SIGIO
            # will not come again for it, so read it now. May raise the cancel.
            self._input_waiting = False
            self._take_control_frames()

    def log_owner(self) -> str:
        return _task_prediction.get() or self._running_id

    def send_log(self, owner: str, source: int, text: str) -> None:
        limit = self.conn.max_send_bytes if self.conn is not None else MAX_FRAME_BYTES
        room = limit - 32 - 4 * len(owner)  # what the frame holds besides the text
        if 4 * len(text) <= room:  # surely fits: UTF-8 takes at most 4 bytes a character
            self.send("log", {"id": owner, "source": source, "text": text})
            return
        # Log text is joined again by the server: send it in frames that fit,
        # cut between characters.
        data = text.encode("utf-8", "replace")
        start = 0
        while start < len(data) and room >= 4:
            end = min(len(data), start + room)
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end -= 1
            self.send("log", {"id": owner, "source": source, "text": data[start:end]})
            start = end

    def _flush_logs(self, owner: str, fds: bool = True) -> None:
        """`owner` (a prediction, or "" for setup) is done: its logs go out now,
        those written to sys.stdout/sys.stderr and, with `fds` (it was the only
        thing running), those written to fds 1 and 2."""
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.flush_owner(owner)
        if fds and self._fds is not None:
            self._fds.settle(owner)

    def _say(self, message: str) -> None:
        """The runner's own last words, when the server cannot be told: onto the
        server's stderr, as a record of its log format."""
        fd = self._fds.original_stderr if self._fds is not None else 2
        if os.environ.get("COG_LOG_FORMAT") == "text":
            line = "cog_runner: %s\n" % message
        else:
            line = json.dumps({"time": _utc_now(), "level": "error", "logger": "cog-runner",
                               "msg": message}) + "\n"
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        except OSError:
            pass

    # ---- frames in, while user code runs ----

    def _user_code_starts(self) -> None:
        """What entering user code has to do first, when SIGIO was held back or
        frames wait (_in_user_code is set). May raise the cancel."""
        if self._sigio_held:
            # Let through: one held back is delivered here, and its handler
            # (in user code now) reads and may raise the cancel.
            self._sigio_held = False
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGIO)
        # Frames read with the Predict, or that arrived (SIGIO) while the
        # runner was outside user code: a recv() only when there are some (a
        # generator enters user code once per item).
        if self._input_waiting or self.conn.has_frames():
            self._input_waiting = False
            self._take_control_frames()

    def _on_input(self, signum: int, frame: Any) -> None:
        if not self._in_user_code:
            # The main loop reads it, or, if a prediction is between steps of
            # its user code, the next step's start (_user_code) does. Until
            # then SIGIO is held back: the kernel raises it for each piece of
            # a large frame (at most 36 KiB) that arrives while this thread is
            # not waiting in recv: for a 1 MiB Predict 8 deliveries on
            # average (a signal frame and a run of this handler each; 14% of
            # the runner's CPU samples) while the main loop read it anyway.
            # Held from the first, 4.4.
            self._input_waiting = True
            if not self._sigio_held:
                self._sigio_held = True
                signal.pthread_sigmask(signal.SIG_BLOCK, _SIGIO)
            return
        if self._reading or self.conn.sending_on_this_thread():
            self._input_waiting = True  # never tear a frame; send() comes back for it
            return
        self._take_control_frames()

    def _take_control_frames(self) -> None:
        """Handles Cancel/Healthcheck/Shutdown now; keeps anything else for the main loop."""
        # SIGIO's handler, run again inside this (a Python signal handler
        # nests at any bytecode), would read into the middle of this read, or
        # raise out of it and lose what it read: it only leaves the input here.
        self._reading = True
        try:
            while True:
                try:
                    frames = self.conn.receive_nowait()
                except ConnectionClosed:
                    frames = [("shutdown", {})]
                except Exception:
                    return  # a broken stream: the main loop's next read reports it
                for name, fields in frames:
                    if name == "cancel" and fields.get("id") == self._running_id:
                        self._cancel_pending = not self._cancel_raised
                    elif name == "shutdown":
                        # The server drains before it says this: whatever still runs is
                        # canceled, and the main loop ends after it.
                        self._stopping = True
                        self._cancel_pending = bool(self._running_id) and not self._cancel_raised
                    elif name == "healthcheck":
                        self._healthchecks.append(fields.get("sequence", 0))
                    elif name != "cancel":
                        self._deferred.append((name, fields))
                if not (self._input_waiting and self._in_user_code):
                    break
                self._input_waiting = False  # SIGIO came meanwhile: read on
        finally:
            self._reading = False
        if self._cancel_pending and self._in_user_code:
            self._cancel_pending = False
            self._cancel_raised = True  # once a prediction: a second would escape _predict's try
            raise CancelationException("prediction canceled")

    # ---- lifecycle ----

    def run(self) -> int:
        try:
            self.conn = Connection.connect_when_listening(self.socket_path, self._waiting)
        except OSError as e:
            print("cog_runner: cannot connect to %s: %s" % (self.socket_path, e), file=sys.stderr)
            return 1
        os.chdir(self.working_directory)
        _keep_large_buffers()
        self._fds = FdCapture(self.send_log, {1: messages.LOG_STDOUT, 2: messages.LOG_STDERR})
        self._fds.start()
        self._stdout = LogStream(self.log_owner, self.send_log, messages.LOG_STDOUT, sys.stdout)
        self._stderr = LogStream(self.log_owner, self.send_log, messages.LOG_STDERR, sys.stderr)
        sys.stdout, sys.stderr = self._stdout, self._stderr
        hello = self._hello()
        self._flush_logs("")  # what importing the predictor printed: setup's logs
        self.send("hello", hello)
        if hello.get("predict_is_async"):
            _asyncio().run(self._serve_async())
            self._flush_logs("")
            return 0
        signal.signal(signal.SIGIO, self._on_input)
        self.conn.signal_on_input()
        try:
            self._serve()
        finally:
            # Frames may still come, each a SIGIO, and the interpreter's exit
            # puts back SIGIO's default action, which ends the process: an
            # orderly end became "killed by signal 29".
            signal.signal(signal.SIGIO, signal.SIG_IGN)
        self._flush_logs("")
        return 0

    def _serve(self) -> None:
        """The sync main loop: one frame, then the next, until Shutdown."""
        while not self._stopping:
            if self._deferred:
                name, fields = self._deferred.pop(0)
            else:
                try:
                    received = self.conn.receive()
                except Exception as e:  # a broken stream: nothing more can be done
                    self._say("connection to the server broke: %s" % e)
                    break
                if received is None:
                    break
                name, fields = received
            if name == "setup":
                self._setup(fields)
            elif name == "predict":
                self._predict(fields)
            elif name == "healthcheck":
                self._healthchecks.append(fields.get("sequence", 0))
            elif name == "bad_frame":
                self._report_bad_frame(fields)
            elif name == "shutdown":
                break
            self._answer_healthchecks()

    def _waiting(self) -> None:
        print("cog_runner: waiting for cog-server to listen on %s" % self.socket_path,
              file=sys.stderr, flush=True)

    def _report_bad_frame(self, fields: Dict[str, Any]) -> None:
        """Tells the server a frame it sent did not decode; the runner serves on."""
        try:
            self.send("bad_frame", fields)
        except FrameTooLarge:  # a limit set too small for the report: it goes without the id
            try:
                self.send("bad_frame", {"error": fields["error"][:200]})
            except FrameTooLarge:
                pass

    def _answer_healthchecks(self) -> None:
        while self._healthchecks:
            sequence = self._healthchecks.pop(0)
            self.send("healthcheck_result", dict(self._user_healthcheck(), sequence=sequence))

    def _user_healthcheck(self) -> Dict[str, Any]:
        check = self.predictor.healthcheck if self.predictor else None
        if check is None:
            return {"healthy": True}
        try:
            result = check()
            if inspect.isawaitable(result):
                result = _asyncio().run(_await(result)) if not _in_event_loop() else True
            if result is False:
                return {"healthy": False, "error": "healthcheck() returned False"}
            return {"healthy": True}
        except Exception as e:
            return {"healthy": False, "error": "healthcheck() raised %s: %s" % (type(e).__name__, e)}

    def _hello(self) -> Dict[str, Any]:
        hello: Dict[str, Any] = {
            "protocol_version": messages.PROTOCOL_VERSION,
            "runner_version": RUNNER_VERSION,
            "python_version": sys.version.split()[0],  # as platform.python_version(), ~7 ms less to import
            "pid": os.getpid(),
            "cog_version": cog.__version__,
            "copies_outputs": True,
            "max_concurrency": self.max_concurrency,
        }
        try:
            document = self._load()
        except Exception as e:
            import traceback  # here and below: only once something failed (~1.4 ms of every start)
            hello["load_error"] = "%s\n%s" % (
                "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip("\n"),
                "Failed to load the predictor (%s): %s" % (self.predict_ref or self.train_ref, e))
            return hello
        is_async = bool(self.predictor and any(
            inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
            for f in (self.predictor.predict, self.predictor.signature_source)))
        if self.max_concurrency > 1 and not is_async:
            hello["load_error"] = (
                "cog.yaml sets concurrency.max to %d, but predict() is not async: predictions of a "
                "sync predict() run one at a time. Write `async def predict(...)`, or remove "
                "concurrency.max." % self.max_concurrency)
            return hello
        hello["openapi_json"] = json.dumps(document).encode()
        hello["predict_is_async"] = is_async
        hello["has_train"] = self.trainer is not None
        hello["has_healthcheck"] = bool(self.predictor and self.predictor.healthcheck)
        return hello

    def _load(self) -> Dict[str, Any]:
        if self.predict_ref:
            self.predictor = load(self.predict_ref, self.working_directory, "predict")
            self._converters["predict"] = input_converters(self.predictor.signature_source)
        if self.train_ref:
            self.trainer = load(self.train_ref, self.working_directory, "train")
            self._converters["train"] = input_converters(self.trainer.signature_source)
        predictor, trainer = self.predictor, self.trainer
        return predictor_document(predictor.signature_source if predictor else None,
                                  bool(predictor and predictor.is_method),
                                  trainer.signature_source if trainer else None,
                                  bool(trainer and trainer.is_method))

    # ---- setup ----

    def _setup_calls(self, fields: Dict[str, Any]) -> Iterator[Callable[[], Any]]:
        for loaded in (self.predictor, self.trainer):
            if loaded is None or loaded.setup is None:
                continue
            kwargs = {}
            if "weights" in inspect.signature(unwrap(loaded.setup)).parameters:
                kwargs["weights"] = self._weights(fields.get("weights", ""))
            yield lambda setup=loaded.setup, kwargs=kwargs: setup(**kwargs)

    def _setup_failed(self, e: BaseException) -> None:
        import traceback
        traceback.print_exc()
        self._flush_logs("")
        self.send("setup_done", {"succeeded": False, "error": "%s: %s" % (type(e).__name__, e)})

    def _check_files_dir(self, fields: Dict[str, Any]) -> None:
        """Says in setup's logs when the server's files directory (a runner
        started elsewhere, Setup.files_dir) is not to be seen here."""
        files_dir = fields.get("files_dir")
        if files_dir and not os.path.isdir(files_dir):
            self.send("log", {"id": "", "source": messages.LOG_RUNNER, "text": (
                "cog-runner: cog-server keeps prediction files in %s, which this container does not "
                "have: Path inputs and outputs will fail; mount the volume of cog-server's --files-dir "
                "at the same path in both containers\n" % files_dir)})

    def _setup(self, fields: Dict[str, Any]) -> None:
        self.conn.set_send_limit(fields.get("max_frame_bytes", 0))
        self._check_files_dir(fields)
        self._running_id = ""
        try:
            for call in self._setup_calls(fields):
                with self._user_code:
                    result = call()
                    if inspect.isawaitable(result):
                        _asyncio().run(_await(result))
        except BaseException as e:  # SystemExit and KeyboardInterrupt fail setup too
            self._setup_failed(e)
            return
        self._flush_logs("")
        self.send("setup_done", {"succeeded": True})

    async def _setup_async(self, fields: Dict[str, Any]) -> None:
        self.conn.set_send_limit(fields.get("max_frame_bytes", 0))
        self._check_files_dir(fields)
        try:
            for call in self._setup_calls(fields):
                result = call()
                if inspect.isawaitable(result):
                    await result
        except BaseException as e:
            self._setup_failed(e)
            return
        self._flush_logs("")
        self.send("setup_done", {"succeeded": True})

    def _weights(self, given: str) -> Any:
        value = given or os.environ.get("COG_WEIGHTS", "")
        if value:
            return cog.Path(value) if not value.startswith(("http://", "https://", "data:")) else value
        if os.path.exists("weights"):
            return cog.Path("weights")
        return None

    # ---- predictions ----

    def _target(self, fields: Dict[str, Any]) -> "tuple[LoadedPredictor, Dict[str, Any]]":
        """What to call for a Predict frame, and its input as the signature wants it."""
        kind = "train" if fields["kind"] == messages.KIND_TRAIN else "predict"
        loaded = self.trainer if kind == "train" else self.predictor
        if loaded is None:
            raise RuntimeError("this model has no %s() configured" % kind)
        # From a str: json.loads() of bytes first works out their encoding.
        payload = json.loads(str(fields["input_json"], "utf-8")) if fields["input_json"] else {}
        if fields.get("input_text_name"):
            payload[fields["input_text_name"]] = str(fields["input_text"], "utf-8")
        for name, convert in self._converters.get(kind, {}).items():
            payload[name] = convert(payload.get(name))
        return loaded, payload

    def _enter_scope(self, fields: Dict[str, Any]) -> contextvars.Token:
        context_json = fields["context_json"]
        context = json.loads(str(context_json, "utf-8")) if context_json not in (b"", b"{}") else None
        output_dir = fields.get("output_dir")
        outputs.shared_dir.set(outputs.SharedDir(output_dir) if output_dir else None)
        return cog_scope._set_scope(cog_scope.Scope(context, self._metric_recorder(fields["id"])))

    def _hold_texts(self, prediction_id: str, items: List[str], since: Optional[float] = None) -> None:
        """Short str items of a prediction whose Predict allowed
        batch_text_items (tokens of a fast generator): held with the next
        ones for one Output frame, their JSON made together, instead of a
        frame each (30% fewer runner instructions for a generator of 100, and
        4 frames for the server to read instead of 100). `since`: when the
        first of them came, if the caller kept them a while. Items are held
        outside user code, where send()'s _after_send has nothing to do."""
        try:
            self.conn.hold_text_items(prediction_id, items, since)
        except OSError:
            self._stopping = True

    def _send_item(self, prediction_id: str, item: Any, index: int, hold: bool = False) -> None:
        # The common item is a short str, sent as it comes to a client that
        # streams it: its frame from an encoder that has the prediction's id
        # encoded already (the bytes send() would write), and where it is in
        # the output ("output[3]") written only for an error.
        conn = self.conn
        limit = conn.max_send_bytes
        text = output_text(item)
        try:
            if text is not None and len(text) < wire.LARGE_PAYLOAD and len(text) <= limit:
                if self._item_encoder_id != prediction_id:
                    self._item_encoder = wire.member_encoder(
                        messages.RUNNER_MESSAGE, "output", {"id": prediction_id}, "value_text")
                    self._item_encoder_id = prediction_id
                # Without send()'s _after_send: an item is sent outside user
                # code (between a generator's steps, or from the event loop),
                # where it has nothing to do. FrameTooLarge if over the limit.
                try:
                    conn.send_frame(self._item_encoder(text), hold)
                except OSError:
                    self._stopping = True  # the server is gone; the main loop ends
                return
            where = "output[%d]" % index
            if text is not None and len(text) > limit:
                raise too_large(where, len(text), limit, "UTF-8")
            fields = ({"value_text": text} if text is not None else
                      encode_output_fields(item, "value_json", where, limit))
            fields["id"] = prediction_id
            self.send("output", fields, hold)
        except FrameTooLarge as e:
            raise too_large("output[%d]" % index, e.size, e.limit) from None

    def _output_fields(self, result: Any) -> Dict[str, Any]:
        return encode_output_fields(result, "output_json", "output", self.conn.max_send_bytes)

    def _send_done(self, done: Dict[str, Any]) -> None:
        try:
            self.send("done", done)
        except FrameTooLarge as e:  # the output fits, but not with its list of files
            self.send("done", {"id": done["id"], "status": messages.DONE_FAILED,
                               "error": str(too_large("output", e.size, e.limit))})

    @staticmethod
    def _failed(done: Dict[str, Any], e: BaseException) -> None:
        if not isinstance(e, OutputError):  # its message says it all; a traceback would show the runner
            import traceback
            traceback.print_exc()
        done["status"] = messages.DONE_FAILED
        if isinstance(e, SystemExit):  # str() is only its code
            done["error"] = "the model called sys.exit(%r)" % (e.code,)
        else:
            done["error"] = str(e) or type(e).__name__

    def _predict(self, fields: Dict[str, Any]) -> None:
        prediction_id = fields["id"]
        batch = fields.get("batch_outputs", False)  # no one takes the items one by one
        together = batch and fields.get("batch_text_items", False)
        done: Dict[str, Any] = {"id": prediction_id}
        self._running_id = prediction_id
        self._cancel_pending = False
        self._cancel_raised = False
        if self._fds is not None:
            self._fds.attribute_to(prediction_id)  # one prediction at a time: fds 1 and 2 are its
        token = self._enter_scope(fields)
        try:
            loaded, payload = self._target(fields)
            with self._user_code:
                result = loaded.predict(**payload)
                if type(result) in _PLAIN_OUTPUTS:
                    pass  # nothing to iterate or await (the inspect calls cost ~1 us each)
                elif inspect.isasyncgen(result):
                    result = _AsyncItems(result)
                elif inspect.isawaitable(result):
                    result = _asyncio().run(_await(result))
            if inspect.isgenerator(result) or isinstance(result, _AsyncItems):
                # Frames read with the Predict wait for the first item. After
                # that, frames are read only where SIGIO says (_on_input), and
                # whatever that leaves unread sets _input_waiting.
                waiting = self.conn.has_frames()
                if together:
                    self._take_text_batched(prediction_id, iter(result), waiting)
                else:
                    self._take_one_by_one(prediction_id, iter(result), waiting, batch)
            else:
                done.update(self._output_fields(result))
            done["status"] = messages.DONE_SUCCEEDED
        except CancelationException:
            done["status"] = messages.DONE_CANCELED
        except BaseException as e:
            self._failed(done, e)
        finally:
            # A cancel raised as user code was being left (in _UserCode.__exit__,
            # or before a generator step's try) skipped the reset.
            self._in_user_code = False
            cog_scope._reset_scope(token)
        self._flush_logs(prediction_id)
        self._running_id = ""
        self._cancel_pending = False
        self._send_done(done)

    def _take_one_by_one(self, prediction_id: str, items: Iterator[Any], waiting: bool,
                         batch: bool, index: int = 0) -> int:
        """A generator's items (or a group of them), each sent before the next
        is taken: as a client that streams them wants them. How many there were."""
        first = index
        # A token's path, where every call of Python code counts:
        # `with self._user_code:` spelled out, has_frames() asked once
        # (bench/runner_cost.py --callgrind).
        while True:
            self._in_user_code = True
            try:
                if waiting or self._sigio_held or self._input_waiting:
                    waiting = False
                    self._user_code_starts()
                item = next(items)
            except StopIteration:
                break
            finally:
                self._in_user_code = False
            self._send_item(prediction_id, item, index, batch)
            index += 1
        return index - first

    def _take_text_batched(self, prediction_id: str, items: Iterator[Any], waiting: bool) -> None:
        """A generator's items when no one takes them one by one and short str
        items may share a frame (Predict.batch_text_items). Consecutive str
        items are taken by C code (list.extend of a groupby group of an islice:
        no Python of the runner's runs between the generator's steps) and a
        run of short ones held in one call. Any other item stops the run where
        it is, and is sent before the generator goes on, as one by one: the
        generator may change an object it yielded (`acc.append(x); yield
        acc`), and a bad item fails the prediction before more steps run. The
        runs are 1, 2, 4 ... items, doubling while they take under
        _QUICK_RUN_SECONDS, up to HOLD_ITEMS, halved when one takes longer, so
        that a slow generator's items are not held for long; they leave in the
        frames hold_text_item() would have made. Items that came before an
        exception are sent before it is raised. Every step of the generator,
        the last included, is user code, entered as the one-by-one loop enters
        it (a Cancel that came meanwhile is read there)."""
        take = 1
        index = 0
        conn = self.conn
        while True:
            started = _monotonic()
            groups = _groupby(_islice(items, take), type)
            taken = 0
            while True:
                run: List[Any] = []
                group = None
                # Nothing between marking user code and the try: SIGIO's
                # handler may raise the cancel at any call's return.
                self._in_user_code = True
                try:
                    if waiting or self._sigio_held or self._input_waiting:
                        waiting = False
                        self._user_code_starts()
                    kind, group = next(groups, _NO_GROUP)
                    if kind is str:
                        run.extend(group)  # up to the next item of another type, taken with it
                except BaseException:
                    self._in_user_code = False
                    self._pass_on(prediction_id, run, index)
                    raise
                self._in_user_code = False
                if group is None:
                    break  # the run is over
                if kind is str:
                    count = len(run)
                    if 0 < min(map(len, run)) and max(map(len, run)) <= TEXT_ITEM_CHARS:
                        try:
                            conn.hold_text_items(prediction_id, run)
                        except OSError:
                            self._stopping = True
                    else:
                        self._pass_on(prediction_id, run, index)
                else:
                    count = self._take_one_by_one(prediction_id, group, False, True, index)
                index += count
                taken += count
            if not taken:
                return  # the generator is done
            if _monotonic() - started < _QUICK_RUN_SECONDS:
                take = min(2 * take, HOLD_ITEMS)
            else:
                take = max(1, take // 2)

    def _pass_on(self, prediction_id: str, run: List[Any], index: int) -> None:
        """Items of a batched generator, one at a time."""
        for item in run:
            if type(item) is str and 0 < len(item) <= TEXT_ITEM_CHARS:
                self._hold_texts(prediction_id, [item])
            else:
                self._send_item(prediction_id, item, index, True)
            index += 1

    # ---- async predictors: several predictions at once on one event loop ----

    async def _serve_async(self) -> None:
        loop = _asyncio().get_running_loop()
        stopped = loop.create_future()
        tasks: Dict[str, "asyncio.Task[None]"] = {}

        def on_readable() -> None:
            try:
                frames = self.conn.receive_nowait()
            except ConnectionClosed:
                frames = [("shutdown", {})]
            except Exception as e:
                self._say("connection to the server broke: %s" % e)
                frames = [("shutdown", {})]
            for name, fields in frames:
                if name == "bad_frame":
                    self._report_bad_frame(fields)
                elif name == "setup":
                    # The server sends no Predict before SetupDone.
                    loop.create_task(self._setup_async(fields))
                elif name == "predict":
                    # The task takes itself out of `tasks` when it ends (a
                    # done callback would cost the event loop a turn).
                    tasks[fields["id"]] = loop.create_task(self._predict_async(fields, tasks))
                elif name == "cancel" and fields.get("id") in tasks:
                    task = tasks[fields["id"]]
                    task.cancel()
                    task.add_done_callback(
                        lambda task, pid=fields["id"]: self._canceled_before_start(pid, task, tasks))
                elif name == "healthcheck":
                    loop.create_task(self._healthcheck_async(fields.get("sequence", 0)))
                elif name == "shutdown" and not stopped.done():
                    stopped.set_result(None)

        loop.add_reader(self.conn.fileno(), on_readable)
        on_readable()  # frames that may already be buffered
        await stopped
        loop.remove_reader(self.conn.fileno())
        for task in list(tasks.values()):
            task.cancel()
        if tasks:
            await _asyncio().gather(*tasks.values(), return_exceptions=True)

    async def _healthcheck_async(self, sequence: int) -> None:
        check = self.predictor.healthcheck if self.predictor else None
        answer: Dict[str, Any] = {"healthy": True}
        if check is not None:
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result is False:
                    answer = {"healthy": False, "error": "healthcheck() returned False"}
            except Exception as e:
                answer = {"healthy": False, "error": "healthcheck() raised %s: %s" % (type(e).__name__, e)}
        self.send("healthcheck_result", dict(answer, sequence=sequence))

    def _canceled_before_start(self, prediction_id: str, task: "asyncio.Task[None]",
                               tasks: Dict[str, "asyncio.Task[None]"]) -> None:
        """A canceled prediction's task has ended. If it is still in `tasks`,
        its coroutine never ran (a Cancel read with its Predict: asyncio throws
        CancelledError in before the first line), so no Done was sent: say it
        ended canceled, or the server would wait for --cancel-timeout and then
        replace the runner and every prediction running in it."""
        if tasks.get(prediction_id) is task:
            del tasks[prediction_id]
            if task.cancelled():
                self._send_done({"id": prediction_id, "status": messages.DONE_CANCELED})

    async def _predict_async(self, fields: Dict[str, Any],
                             tasks: Dict[str, "asyncio.Task[None]"]) -> None:
        try:
            prediction_id = fields["id"]
            _task_prediction.set(prediction_id)  # this task's own context
            together = fields.get("batch_outputs", False) and fields.get("batch_text_items", False)
            done: Dict[str, Any] = {"id": prediction_id}
            self._enter_scope(fields)
            try:
                loaded, payload = self._target(fields)
                result = loaded.predict(**payload)
                if inspect.isasyncgen(result):
                    if together:
                        await self._take_async_batched(prediction_id, result)
                    else:
                        index = 0
                        async for item in result:
                            self._send_item(prediction_id, item, index)
                            index += 1
                elif inspect.isgenerator(result):
                    for index, item in enumerate(result):
                        if together and type(item) is str and 0 < len(item) <= TEXT_ITEM_CHARS:
                            self._hold_texts(prediction_id, [item])
                        else:
                            self._send_item(prediction_id, item, index)
                else:
                    if inspect.isawaitable(result):
                        result = await result
                    done.update(self._output_fields(result))
                done["status"] = messages.DONE_SUCCEEDED
            except (_asyncio().CancelledError, CancelationException):
                done["status"] = messages.DONE_CANCELED
            except BaseException as e:
                # Not only Exception, as in a sync predictor: SystemExit or
                # KeyboardInterrupt (sys.exit() in predict()) ended the event
                # loop and the runner, and every prediction beside it came out
                # "canceled"; a BaseException of the model's own left its
                # prediction without a Done, running forever. GeneratorExit
                # too: raised by the model, or thrown in by close() of this
                # coroutine (only ever after _serve_async gathered its tasks),
                # where a Done, sent without awaiting, does no harm.
                self._failed(done, e)
            # fds 1 and 2 are shared by the predictions running at once: what is
            # written there belongs to none of them (the server logs it as such).
            self._flush_logs(prediction_id, fds=False)
            self._send_done(done)
        finally:
            tasks.pop(fields["id"], None)

    async def _take_async_batched(self, prediction_id: str, items: Any) -> None:
        """An async generator's items when no one takes them one by one and
        short str items may share a frame (Predict.batch_text_items): a run of
        short str items is gathered here and held in one call
        (Connection.hold_text_items), at HOLD_ITEMS items or _HOLD_SECONDS
        after its first, as hold_text_item() would have sent them; ~40% fewer
        runner instructions for 100 items than holding each on its own. Any
        other item ends the run and is sent after it, before the generator
        goes on. Items that came before an exception (a cancel included) are
        sent before it is raised."""
        run: List[str] = []
        first = 0.0
        index = 0
        try:
            async for item in items:
                if type(item) is str and 0 < len(item) <= TEXT_ITEM_CHARS:
                    now = _monotonic()
                    if not run:
                        first = now
                    run.append(item)
                    if len(run) >= HOLD_ITEMS or now - first >= _HOLD_SECONDS:
                        self._hold_texts(prediction_id, run, first)
                        run = []
                else:
                    if run:
                        self._hold_texts(prediction_id, run, first)
                        run = []
                    self._send_item(prediction_id, item, index, True)
                index += 1
        finally:
            if run:
                self._hold_texts(prediction_id, run, first)

    def _metric_recorder(self, prediction_id: str) -> Callable[[str, Any, str], None]:
        modes = {"replace": messages.METRIC_REPLACE, "incr": messages.METRIC_INCREMENT,
                 "append": messages.METRIC_APPEND}

        def record(name: str, value: Any, mode: str) -> None:
            where = "metric %r" % (name,)
            value_json = encode_output_json(value, where, self.conn.max_send_bytes)
            try:
                self.send("metric", {"id": prediction_id, "name": name, "value_json": value_json,
                                     "mode": modes[mode]})
            except FrameTooLarge as e:
                raise too_large(where, e.size, e.limit) from None
        return record


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return "%s... [%d more characters cut: over the frame limit]" % (text[:max(limit - 64, 0)], len(text) - limit)


def _keep_large_buffers() -> None:
    """Large frames (a MiB-sized input or output) are decoded into strings of
    that size for every prediction. glibc hands such blocks to mmap() and back
    on free, so each prediction paid page faults on fresh zeroed pages (perf:
    most of the runner's time on a 1 MiB input was in the kernel). Blocks under
    16 MiB now come from the heap, and up to 32 MiB of free heap is kept."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 32 << 20)  # M_TRIM_THRESHOLD


def _asyncio() -> Any:
    """asyncio, imported when first needed: it takes ~45 ms to import (ssl,
    concurrent.futures, logging), and a sync predictor never needs it."""
    import asyncio
    return asyncio


def _in_event_loop() -> bool:
    if "asyncio" not in sys.modules:
        return False  # no loop can be running
    try:
        _asyncio().get_running_loop()
        return True
    except RuntimeError:
        return False


def run_to_completion(result: Any) -> Any:
    """The output of a predict() call: awaited if a coroutine, collected if an iterator."""
    if inspect.isasyncgen(result):
        return list(_AsyncItems(result))
    if inspect.isawaitable(result):
        return _asyncio().run(_await(result))
    if inspect.isgenerator(result):
        return list(result)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


class _AsyncItems:
    """Iterates an async generator from sync code, one event loop for all items."""

    def __init__(self, agen: Any) -> None:
        self._agen = agen

    def __iter__(self):
        loop = _asyncio().new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(self._agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _utc_now() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
