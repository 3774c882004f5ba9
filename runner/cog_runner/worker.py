"""The runner's main loop: load, hello, setup, then predictions until shutdown.

Threads: a reader thread takes frames from the server; the main thread runs
setup() and every sync prediction, so that a cancel can interrupt it with a
signal (CancelationException is raised where predict() is). Frames to the
server go out from whichever thread has something to say; Connection.send is
thread-safe.
"""

import asyncio
import dataclasses
import inspect
import io
import json
import os
import pathlib
import platform
import queue
import signal
import sys
import threading
import traceback
import typing
from typing import Any, Callable, Dict, Optional

import cog
from cog import scope as cog_scope
from cog.server.exceptions import CancelationException
from cog.types import Secret

from . import messages
from .connection import Connection
from .predictor_ref import LoadedPredictor, load
from .schema import input_component, openapi_document, output_component

RUNNER_VERSION = "0.1.0"
CANCEL_SIGNAL = signal.SIGUSR1


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


def encode_output(value: Any) -> Any:
    """A value the predictor returned, as JSON-ready data (Paths become file:// URLs)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Secret):
        return "**********"
    if isinstance(value, os.PathLike):
        return pathlib.Path(os.fspath(value)).absolute().as_uri()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode_output(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_output(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_output(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return encode_output(value.tolist())
    raise TypeError("the output %r of type %s cannot be turned into JSON" % (value, type(value).__name__))


class Worker:
    def __init__(self, socket_path: str, working_directory: str, predict_ref: str,
                 train_ref: str, max_concurrency: int) -> None:
        self.socket_path = socket_path
        self.working_directory = os.path.abspath(working_directory)
        self.predict_ref = predict_ref
        self.train_ref = train_ref
        self.max_concurrency = max_concurrency
        self.conn: Optional[Connection] = None
        self.jobs: "queue.Queue[tuple]" = queue.Queue()
        self.predictor: Optional[LoadedPredictor] = None
        self.trainer: Optional[LoadedPredictor] = None
        self._converters: Dict[str, Dict[str, Callable[[Any], Any]]] = {}
        self._state_lock = threading.Lock()
        self._running_id = ""  # the sync prediction on the main thread
        self._cancel_id = ""
        self._canceled_before_start: set = set()
        self._main_thread = threading.main_thread()
        self._stdout: Optional[_ServerStream] = None
        self._stderr: Optional[_ServerStream] = None

    # ---- logs ----

    def log_owner(self) -> str:
        if threading.current_thread() is self._main_thread:
            return self._running_id
        return ""

    def send_log(self, owner: str, source: int, text: str) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send("log", {"id": owner, "source": source, "text": text})
        except OSError:
            pass  # the server is gone; the reader thread ends the runner

    def _flush_logs(self, owner: str) -> None:
        for stream in (self._stdout, self._stderr):
            if stream is not None:
                stream.flush_owner(owner)

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
        signal.signal(CANCEL_SIGNAL, self._on_cancel_signal)

        self.conn.send("hello", self._hello())
        reader = threading.Thread(target=self._read_loop, name="cog-runner-reader", daemon=True)
        reader.start()
        while True:
            job = self.jobs.get()
            if job[0] == "stop":
                break
            if job[0] == "setup":
                self._setup(job[1])
            elif job[0] == "predict":
                self._predict(job[1])
        self._flush_logs("")
        return 0

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
        hello["openapi_json"] = json.dumps(document).encode()
        hello["predict_is_async"] = bool(self.predictor and (
            inspect.iscoroutinefunction(self.predictor.predict)
            or inspect.isasyncgenfunction(self.predictor.predict)))
        hello["has_train"] = self.trainer is not None
        hello["has_healthcheck"] = bool(self.predictor and self.predictor.healthcheck)
        return hello

    def _load(self) -> Dict[str, Any]:
        input_schema: Dict[str, Any] = {"properties": {}, "type": "object", "title": "Input"}
        enums: Dict[str, Any] = {}
        output_schema: Dict[str, Any] = {"title": "Output"}
        if self.predict_ref:
            self.predictor = load(self.predict_ref, self.working_directory, "predict")
            input_schema, enums = input_component(self.predictor.signature_source,
                                                  self.predictor.is_method)
            output_schema = output_component(self.predictor.signature_source)
            self._converters["predict"] = self._input_converters(self.predictor)
        if self.train_ref:
            self.trainer = load(self.train_ref, self.working_directory, "train")
            self._converters["train"] = self._input_converters(self.trainer)
        return openapi_document(input_schema, enums, output_schema)

    @staticmethod
    def _input_converters(loaded: LoadedPredictor) -> Dict[str, Callable[[Any], Any]]:
        """Wraps JSON values into what the signature asks for (cog.Path, cog.Secret)."""
        hints = typing.get_type_hints(loaded.signature_source)
        converters: Dict[str, Callable[[Any], Any]] = {}
        for name, hint in hints.items():
            if name == "return":
                continue
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            base = args[0] if typing.get_origin(hint) is typing.Union else hint
            origin = typing.get_origin(base)
            item = typing.get_args(base)[0] if origin is list and typing.get_args(base) else None
            for cls, wrap in ((cog.Path, cog.Path), (Secret, Secret)):
                if inspect.isclass(base) and issubclass(base, cls):
                    converters[name] = lambda v, wrap=wrap: None if v is None else wrap(v)
                elif inspect.isclass(item) and issubclass(item, cls):
                    converters[name] = lambda v, wrap=wrap: None if v is None else [wrap(x) for x in v]
        return converters

    def _read_loop(self) -> None:
        try:
            while True:
                received = self.conn.receive()
                if received is None:
                    break
                name, fields = received
                if name == "setup":
                    self.jobs.put(("setup", fields))
                elif name == "predict":
                    self.jobs.put(("predict", fields))
                elif name == "cancel":
                    self._cancel(fields["id"])
                elif name == "healthcheck":
                    self.conn.send("healthcheck_result", {"sequence": fields["sequence"], "healthy": True})
                elif name == "shutdown":
                    break
        except Exception as e:  # a broken stream: nothing more can be done
            print("cog_runner: connection to the server broke: %s" % e, file=sys.__stderr__)
        self._cancel(self._running_id)
        self.jobs.put(("stop",))

    # ---- setup ----

    def _setup(self, fields: Dict[str, Any]) -> None:
        self._running_id = ""
        try:
            for loaded in (self.predictor, self.trainer):
                if loaded is None or loaded.setup is None:
                    continue
                setup = loaded.setup
                kwargs = {}
                if "weights" in inspect.signature(setup).parameters:
                    kwargs["weights"] = self._weights(fields.get("weights", ""))
                result = setup(**kwargs)
                if inspect.isawaitable(result):
                    asyncio.run(_await(result))
        except BaseException as e:  # SystemExit and KeyboardInterrupt fail setup too
            traceback.print_exc()
            self._flush_logs("")
            self.conn.send("setup_done", {"succeeded": False, "error": "%s: %s" % (type(e).__name__, e)})
            return
        self._flush_logs("")
        self.conn.send("setup_done", {"succeeded": True})

    def _weights(self, given: str) -> Any:
        value = given or os.environ.get("COG_WEIGHTS", "")
        if value:
            return cog.Path(value) if not value.startswith(("http://", "https://", "data:")) else value
        if os.path.exists("weights"):
            return cog.Path("weights")
        return None

    # ---- predictions ----

    def _cancel(self, prediction_id: str) -> None:
        if not prediction_id:
            return
        with self._state_lock:
            if self._running_id == prediction_id:
                self._cancel_id = prediction_id
                signal.pthread_kill(self._main_thread.ident, CANCEL_SIGNAL)
            else:
                self._canceled_before_start.add(prediction_id)

    def _on_cancel_signal(self, signum: int, frame: Any) -> None:
        with self._state_lock:
            if not self._running_id or self._cancel_id != self._running_id:
                return
            self._cancel_id = ""
        raise CancelationException("prediction canceled")

    def _predict(self, fields: Dict[str, Any]) -> None:
        prediction_id = fields["id"]
        kind = "train" if fields["kind"] == messages.KIND_TRAIN else "predict"
        loaded = self.trainer if kind == "train" else self.predictor
        done: Dict[str, Any] = {"id": prediction_id}
        with self._state_lock:
            if prediction_id in self._canceled_before_start:
                self._canceled_before_start.discard(prediction_id)
                self.conn.send("done", dict(done, status=messages.DONE_CANCELED))
                return
            self._running_id = prediction_id
        context = json.loads(fields["context_json"] or b"{}")
        token = cog_scope._set_scope(cog_scope.Scope(context, self._metric_recorder(prediction_id)))
        try:
            if loaded is None:
                raise RuntimeError("this model has no %s() configured" % kind)
            payload = json.loads(fields["input_json"] or b"{}")
            for name, convert in self._converters.get(kind, {}).items():
                if name in payload:
                    payload[name] = convert(payload[name])
            result = loaded.predict(**payload)
            if inspect.isasyncgen(result):
                result = _drain_async(result)
            elif inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            if inspect.isgenerator(result) or isinstance(result, _AsyncItems):
                for item in result:
                    self.conn.send("output", {"id": prediction_id,
                                              "value_json": json.dumps(encode_output(item)).encode()})
                done["status"] = messages.DONE_SUCCEEDED
            else:
                done["output_json"] = json.dumps(encode_output(result)).encode()
                done["status"] = messages.DONE_SUCCEEDED
        except CancelationException:
            done["status"] = messages.DONE_CANCELED
        except BaseException as e:
            traceback.print_exc()
            done["status"] = messages.DONE_FAILED
            done["error"] = str(e) or type(e).__name__
        finally:
            with self._state_lock:
                self._running_id = ""
                self._cancel_id = ""
            cog_scope._reset_scope(token)
        self._flush_logs(prediction_id)
        self.conn.send("done", done)

    def _metric_recorder(self, prediction_id: str) -> Callable[[str, Any, str], None]:
        modes = {"replace": messages.METRIC_REPLACE, "incr": messages.METRIC_INCREMENT,
                 "append": messages.METRIC_APPEND}

        def record(name: str, value: Any, mode: str) -> None:
            self.conn.send("metric", {"id": prediction_id, "name": name,
                                      "value_json": json.dumps(encode_output(value)).encode(),
                                      "mode": modes[mode]})
        return record


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


def _drain_async(agen: Any) -> _AsyncItems:
    return _AsyncItems(agen)
