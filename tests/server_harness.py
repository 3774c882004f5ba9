"""Starts the real cog-server binary on a real predictor, for end-to-end tests.

Ports are chosen by the kernel (port 0) and read back from --port-file; the
predictor is copied to a fresh temporary directory; nothing is shared between
servers. Waits are for conditions, with deadlines, never bare sleeps.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, Iterable, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _runfile(path: str) -> str:
    for base in (os.environ.get("TEST_SRCDIR", ""), os.environ.get("RUNFILES_DIR", "")):
        if base:
            candidate = os.path.join(base, "cog_runtime", path)
            if os.path.exists(candidate):
                return candidate
    return os.path.join(ROOT, path)


SERVER_BINARY = _runfile("server/cog-server")
PREDICTORS = os.path.join(HERE, "predictors")


def wait_until(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.01)


def status_kib(pid: int, field: str) -> int:
    """A memory figure of process `pid` from /proc/<pid>/status ("VmRSS", "VmHWM"), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid` (VmRSS), KiB."""
    return status_kib(pid, "VmRSS")


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


class CogServer:
    def __init__(self, predictor: str = "", args: Iterable[str] = (), env: Optional[Dict[str, str]] = None,
                 source_dir: Optional[str] = None, files: Optional[Dict[str, str]] = None,
                 stdout: Any = None):
        """Serves tests/predictors/<predictor>, or `source_dir`, or a model made of
        `files` ({"cog.yaml": ..., "predict.py": ...}) written for this server only.
        `stdout`: where its output goes instead of the log file logs() reads."""
        self.tmp = tempfile.mkdtemp(prefix="cog-e2e-")
        self.workdir = os.path.join(self.tmp, "model")
        if files is not None:
            os.makedirs(self.workdir)
            for name, content in files.items():
                with open(os.path.join(self.workdir, name), "w") as f:
                    f.write(content)
        else:
            shutil.copytree(source_dir or os.path.join(PREDICTORS, predictor), self.workdir)
        self.port_file = os.path.join(self.tmp, "ports.json")
        self.log_path = os.path.join(self.tmp, "server.log")
        full_env = dict(os.environ)
        # The server's own temporary directory, to see what it leaves behind. Short:
        # Unix socket paths are limited to 107 bytes, and Bazel's test temp dirs are longer.
        self.tmpdir = os.path.join(self.tmp, "t")
        os.makedirs(self.tmpdir)
        full_env["TMPDIR"] = self.tmpdir
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [SERVER_BINARY, "--working-directory", self.workdir, "--host", "127.0.0.1",
             "--port", "0", "--grpc-port", "0", "--port-file", self.port_file, *args],
            stdout=self.log if stdout is None else stdout, stderr=subprocess.STDOUT, env=full_env)
        ports = wait_until(self._read_ports, what="the server to listen (see %s)" % self.log_path)
        self.http_port, self.grpc_port = ports["http"], ports["grpc"]

    def _read_ports(self):
        if self.process.poll() is not None:
            raise AssertionError("cog-server exited with %s:\n%s" % (self.process.returncode, self.logs()))
        try:
            with open(self.port_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def logs(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # ---- HTTP ----

    def request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                raw: Optional[bytes] = None, timeout: float = 60) -> Tuple[int, Dict[str, str], Any]:
        """Returns (status, headers with lower-case names, parsed JSON body or text)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            all_headers = dict(headers or {})
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                all_headers.setdefault("Content-Type", "application/json")
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            payload = response.read()
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode(errors="replace")
            return response.status, response_headers, parsed
        finally:
            connection.close()

    def health(self) -> Dict[str, Any]:
        status, _, body = self.request("GET", "/health-check")
        assert status == 200, (status, body)
        return body

    def wait_for_status(self, *statuses: str, timeout: float = 60) -> Dict[str, Any]:
        def reached():
            health = self.health()
            if health["status"] in statuses:
                return health
            if health["status"] in ("SETUP_FAILED", "DEFUNCT"):  # it will not change any more
                raise AssertionError("status is %s, not %s" % (health["status"], statuses))
            return None
        try:
            return wait_until(reached, timeout, "health-check status in %s" % (statuses,))
        except AssertionError as e:
            raise AssertionError("%s; last health %s; server log:\n%s" % (e, self.health(), self.logs()))

    # ---- processes ----

    def runner_pids(self):
        pids = []
        task_dir = "/proc/%d/task" % self.process.pid
        try:
            for task in os.listdir(task_dir):
                with open(os.path.join(task_dir, task, "children")) as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def temp_entries(self):
        """What is in the server's TMPDIR now (the runner's socket directory, the
        root of its prediction directories, what predictors made there)."""
        found = []
        for base, dirs, files in os.walk(self.tmpdir):
            found += [os.path.relpath(os.path.join(base, name), self.tmpdir) for name in dirs + files]
        return sorted(found)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signals the server and waits for it; `left_in_tmpdir` then says what it
        left behind in its TMPDIR."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
            self.left_in_tmpdir = self.temp_entries()
            return code
        finally:
            self.close()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
