"""The runner's main loop: load, hello, setup, then predictions until shutdown.

One thread does everything: it reads frames, runs setup() and predict(), and
sends frames back. A handoff between Python threads costs ~25 us each way, more
than a null prediction itself. While user code runs, the socket signals SIGIO
to this thread (see Connection.signal_on_input); the handler reads what
arrived, and a Cancel for the running prediction raises CancelationException
where predict() is. It never raises in the middle of sending a frame: then the
cancel waits until the frame is out.
"""

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import io
import json
import os
import pathlib
import platform
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional

import cog
from cog import scope as cog_scope
from cog.server.exceptions import CancelationException
from cog.types import Secret

from . import messages
from .coerce import input_converters
from .connection import Connection, ConnectionClosed, Frame
from .predictor_ref import LoadedPredictor, load
from .schema import predictor_document

RUNNER_VERSION = "0.1.0"

# The prediction an asyncio task works for (async predictors run several at once).
_task_prediction: "contextvars.ContextVar[str]" = contextvars.ContextVar("cog_prediction", default="")


class _ServerStream(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr: whole lines go to the server as Log frames."""

    def __init__(self, worker: "Worker", source: int, original: Any) -> None:
        self._worker = worker
        self._source = source
        self._original = original
        self._pending: Dict[str, str] = {}
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        owner = self._worker.log_owner()
        with self._lock:
            buffered = self._pending.get(owner, "") + text
            cut = buffered.rfind("\n") + 1
            self._pending[owner] = buffered[cut:]
        if cut:
            self._worker.send_log(owner, self._source, buffered[:cut])
        return len(text)

    def flush_owner(self, owner: str) -> None:
        with self._lock:
            rest = self._pending.pop(owner, "")
        if rest:
            self._worker.send_log(owner, self._source, rest + "\n")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:
        return "utf-8"

    def isatty(self) -> bool:
        return False


def encode_output(value: Any, files: Optional[List[str]] = None, pointer: str = "") -> Any:
    """A value the predictor returned, as JSON-ready data. Paths become file://
    URLs, and their JSON pointers (RFC 6901) are appended to `files`: only those
    are files for the server; a str that looks like a file URL stays a str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, os.PathLike):
        if files is not None:
            files.append(pointer)
        return pathlib.Path(os.fspath(value)).absolute().as_uri()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode_output(v, files, "%s/%d" % (pointer, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): encode_output(v, files, pointer + "/" + _pointer_token(k)) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_output(getattr(value, f.name), files, pointer + "/" + _pointer_token(f.name))
                for f in dataclasses.fields(value)}
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return encode_output(value.tolist(), files, pointer)
    raise TypeError("the output %r of type %s cannot be turned into JSON" % (value, type(value).__name__))


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def encode_output_fields(value: Any, value_field: str) -> Dict[str, Any]:
    """The fields of an Output or Done frame that carry `value`."""
    files: List[str] = []
    fields = {value_field: json.dumps(encode_output(value, files)).encode()}
    if files:
        fields["files_json"] = json.dumps(files).encode()
    return fields


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
        self._input_waiting = False  # SIGIO came while this thread was mid-send
        self._stopping = False     # Shutdown received, or the server went away
        self._deferred: List[Frame] = []
        self._healthchecks: List[int] = []
        self._stdout: Optional[_ServerStream] = None
        self._stderr: Optional[_ServerStream] = None

    # ---- frames out ----

    def send(self, name: str, fields: Dict[str, Any]) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send(name, fields)
        except OSError:
            self._stopping = True  # the server is gone; the main loop ends
            return
        if (self._in_user_code and self._input_waiting
                and threading.current_thread() is threading.main_thread()):
            # Input arrived while the frame was going out (see _on_input): SIGIO
            # will not come again for it, so read it now. May raise the cancel.
            self._input_waiting = False
            self._take_control_frames()

    def log_owner(self) -> str:
        return _task_prediction.get() or self._running_id

    def send_log(self, owner: str, source: int, text: str) -> None:
        self.send("log", {"id": owner, "source": source, "text": text})

    def _flush_logs(self, owner: str) -> None:
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.flush_owner(owner)

    # ---- frames in, while user code runs ----

    def _on_input(self, signum: int, frame: Any) -> None:
        if not self._in_user_code:
            return  # the main loop reads it
        if self.conn.sending_on_this_thread():
            self._input_waiting = True  # never tear a frame; send() comes back for it
            return
        self._take_control_frames()

    def _take_control_frames(self) -> None:
        """Handles Cancel/Healthcheck/Shutdown now; keeps anything else for the main loop."""
        try:
            frames = self.conn.receive_nowait()
        except ConnectionClosed:
            frames = [("shutdown", {})]
        except Exception:
            return  # a broken stream: the main loop's next read reports it
        for name, fields in frames:
            if name == "cancel" and fields.get("id") == self._running_id:
                self._cancel_pending = True
            elif name == "shutdown":
                # The server drains before it says this: whatever still runs is
                # canceled, and the main loop ends after it.
                self._stopping = True
                self._cancel_pending = bool(self._running_id)
            elif name == "healthcheck":
                self._healthchecks.append(fields.get("sequence", 0))
            elif name != "cancel":
                self._deferred.append((name, fields))
        if self._cancel_pending and self._in_user_code:
            self._cancel_pending = False
            raise CancelationException("prediction canceled")

    @contextlib.contextmanager
    def _user_code(self) -> Iterator[None]:
        """Marks where a cancel may interrupt: the predictor's own code."""
        self._in_user_code = True
        try:
            self._take_control_frames()  # frames that arrived with the Predict
            yield
        finally:
            self._in_user_code = False

    # ---- lifecycle ----

    def run(self) -> int:
        try:
            self.conn = Connection.connect(self.socket_path)
        except OSError as e:
            print("cog_runner: cannot connect to %s: %s" % (self.socket_path, e), file=sys.stderr)
            return 1
        os.chdir(self.working_directory)
        self._stdout = _ServerStream(self, messages.LOG_STDOUT, sys.stdout)
        self._stderr = _ServerStream(self, messages.LOG_STDERR, sys.stderr)
        sys.stdout, sys.stderr = self._stdout, self._stderr
        hello = self._hello()
        self.send("hello", hello)
        if hello.get("predict_is_async"):
            asyncio.run(self._serve_async())
            self._flush_logs("")
            return 0
        signal.signal(signal.SIGIO, self._on_input)
        self.conn.signal_on_input()
        while not self._stopping:
            if self._deferred:
                name, fields = self._deferred.pop(0)
            else:
                try:
                    received = self.conn.receive()
                except Exception as e:  # a broken stream: nothing more can be done
                    print("cog_runner: connection to the server broke: %s" % e, file=sys.__stderr__)
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
            elif name == "shutdown":
                break
            self._answer_healthchecks()
        self._flush_logs("")
        return 0

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
                result = asyncio.run(_await(result)) if not _in_event_loop() else True
            if result is False:
                return {"healthy": False, "error": "healthcheck() returned False"}
            return {"healthy": True}
        except Exception as e:
            return {"healthy": False, "error": "healthcheck() raised %s: %s" % (type(e).__name__, e)}

    def _hello(self) -> Dict[str, Any]:
        hello: Dict[str, Any] = {
            "protocol_version": messages.PROTOCOL_VERSION,
            "runner_version": RUNNER_VERSION,
            "python_version": platform.python_version(),
            "pid": os.getpid(),
            "cog_version": cog.__version__,
            "max_concurrency": self.max_concurrency,
        }
        try:
            document = self._load()
        except Exception as e:
            hello["load_error"] = "%s\n%s" % (
                "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip("\n"),
                "Failed to load the predictor (%s): %s" % (self.predict_ref or self.train_ref, e))
            return hello
        is_async = bool(self.predictor and (
            inspect.iscoroutinefunction(self.predictor.predict)
            or inspect.isasyncgenfunction(self.predictor.predict)))
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
            if "weights" in inspect.signature(loaded.setup).parameters:
                kwargs["weights"] = self._weights(fields.get("weights", ""))
            yield lambda setup=loaded.setup, kwargs=kwargs: setup(**kwargs)

    def _setup_failed(self, e: BaseException) -> None:
        traceback.print_exc()
        self._flush_logs("")
        self.send("setup_done", {"succeeded": False, "error": "%s: %s" % (type(e).__name__, e)})

    def _setup(self, fields: Dict[str, Any]) -> None:
        self._running_id = ""
        try:
            for call in self._setup_calls(fields):
                with self._user_code():
                    result = call()
                    if inspect.isawaitable(result):
                        asyncio.run(_await(result))
        except BaseException as e:  # SystemExit and KeyboardInterrupt fail setup too
            self._setup_failed(e)
            return
        self._flush_logs("")
        self.send("setup_done", {"succeeded": True})

    async def _setup_async(self, fields: Dict[str, Any]) -> None:
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
        payload = json.loads(fields["input_json"] or b"{}")
        for name, convert in self._converters.get(kind, {}).items():
            payload[name] = convert(payload.get(name))
        return loaded, payload

    def _enter_scope(self, fields: Dict[str, Any]) -> contextvars.Token:
        context = json.loads(fields["context_json"] or b"{}")
        return cog_scope._set_scope(cog_scope.Scope(context, self._metric_recorder(fields["id"])))

    def _send_item(self, prediction_id: str, item: Any) -> None:
        self.send("output", dict(encode_output_fields(item, "value_json"), id=prediction_id))

    def _predict(self, fields: Dict[str, Any]) -> None:
        prediction_id = fields["id"]
        done: Dict[str, Any] = {"id": prediction_id}
        self._running_id = prediction_id
        self._cancel_pending = False
        token = self._enter_scope(fields)
        try:
            loaded, payload = self._target(fields)
            with self._user_code():
                result = loaded.predict(**payload)
                if inspect.isasyncgen(result):
                    result = _AsyncItems(result)
                elif inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
            if inspect.isgenerator(result) or isinstance(result, _AsyncItems):
                items = iter(result)
                while True:
                    with self._user_code():
                        try:
                            item = next(items)
                        except StopIteration:
                            break
                    self._send_item(prediction_id, item)
            else:
                done.update(encode_output_fields(result, "output_json"))
            done["status"] = messages.DONE_SUCCEEDED
        except CancelationException:
            done["status"] = messages.DONE_CANCELED
        except BaseException as e:
            traceback.print_exc()
            done["status"] = messages.DONE_FAILED
            done["error"] = str(e) or type(e).__name__
        finally:
            cog_scope._reset_scope(token)
        self._flush_logs(prediction_id)
        self._running_id = ""
        self._cancel_pending = False
        self.send("done", done)

    # ---- async predictors: several predictions at once on one event loop ----

    async def _serve_async(self) -> None:
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        tasks: Dict[str, "asyncio.Task[None]"] = {}

        def on_readable() -> None:
            try:
                frames = self.conn.receive_nowait()
            except ConnectionClosed:
                frames = [("shutdown", {})]
            except Exception as e:
                print("cog_runner: connection to the server broke: %s" % e, file=sys.__stderr__)
                frames = [("shutdown", {})]
            for name, fields in frames:
                if name == "setup":
                    # The server sends no Predict before SetupDone.
                    loop.create_task(self._setup_async(fields))
                elif name == "predict":
                    task = loop.create_task(self._predict_async(fields))
                    tasks[fields["id"]] = task
                    task.add_done_callback(lambda _, pid=fields["id"]: tasks.pop(pid, None))
                elif name == "cancel" and fields.get("id") in tasks:
                    tasks[fields["id"]].cancel()
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
            await asyncio.gather(*tasks.values(), return_exceptions=True)

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

    async def _predict_async(self, fields: Dict[str, Any]) -> None:
        prediction_id = fields["id"]
        _task_prediction.set(prediction_id)  # this task's own context
        done: Dict[str, Any] = {"id": prediction_id}
        self._enter_scope(fields)
        try:
            loaded, payload = self._target(fields)
            result = loaded.predict(**payload)
            if inspect.isasyncgen(result):
                async for item in result:
                    self._send_item(prediction_id, item)
            elif inspect.isgenerator(result):
                for item in result:
                    self._send_item(prediction_id, item)
            else:
                if inspect.isawaitable(result):
                    result = await result
                done.update(encode_output_fields(result, "output_json"))
            done["status"] = messages.DONE_SUCCEEDED
        except (asyncio.CancelledError, CancelationException):
            done["status"] = messages.DONE_CANCELED
        except Exception as e:
            traceback.print_exc()
            done["status"] = messages.DONE_FAILED
            done["error"] = str(e) or type(e).__name__
        self._flush_logs(prediction_id)
        self.send("done", done)

    def _metric_recorder(self, prediction_id: str) -> Callable[[str, Any, str], None]:
        modes = {"replace": messages.METRIC_REPLACE, "incr": messages.METRIC_INCREMENT,
                 "append": messages.METRIC_APPEND}

        def record(name: str, value: Any, mode: str) -> None:
            self.send("metric", {"id": prediction_id, "name": name,
                                 "value_json": json.dumps(encode_output(value)).encode(),
                                 "mode": modes[mode]})
        return record


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def run_to_completion(result: Any) -> Any:
    """The output of a predict() call: awaited if a coroutine, collected if an iterator."""
    if inspect.isasyncgen(result):
        return list(_AsyncItems(result))
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
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
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(self._agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


