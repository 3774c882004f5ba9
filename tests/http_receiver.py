"""A real local HTTP server for the tests: it records the webhooks and uploads it
receives, can be told to fail a number of times, and serves files to download
(also through redirects, and slowly: half the bytes, then a wait for the test)."""

import http.server
import json
import threading
import time
from typing import Any, Dict, List


class Receiver:
    def __init__(self):
        self.requests: List[Dict[str, Any]] = []
        self.failures: Dict[str, List[int]] = {}  # path -> statuses to answer first
        self.files: Dict[str, bytes] = {}
        self.redirects: Dict[str, str] = {}  # path -> Location, answered with 302
        self.locations: Dict[str, str] = {}  # upload path -> Location header of the answer
        # path -> event: GET sends half the file, then waits for the event.
        self.stalls: Dict[str, threading.Event] = {}
        self._lock = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    planned = receiver.failures.get(self.path, [])
                    status = planned.pop(0) if planned else 200
                    receiver.requests.append({"method": self.command, "path": self.path,
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body, "status": status, "time": time.monotonic()})
                    receiver._lock.notify_all()
                self.send_response(status)
                if status < 300 and self.path in receiver.locations:
                    self.send_header("Location", receiver.locations[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _record
            do_PUT = _record

            def do_GET(self):
                with receiver._lock:
                    receiver.requests.append({"method": "GET", "path": self.path, "headers": {},
                                              "body": b"", "status": 0, "time": time.monotonic()})
                    receiver._lock.notify_all()
                if self.path in receiver.redirects:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content = receiver.files.get(self.path)
                if content is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                stall = receiver.stalls.get(self.path)
                if stall is not None:
                    self.wfile.write(content[:len(content) // 2])
                    self.wfile.flush()
                    stall.wait(60)
                    content = content[len(content) // 2:]
                try:
                    self.wfile.write(content)
                except OSError:
                    pass  # the client gave up (a stall timeout, a cancel)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def received(self, path: str, accepted_only: bool = False) -> List[Dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path and (not accepted_only or r["status"] < 300)]

    def bodies(self, path: str) -> List[Any]:
        return [json.loads(r["body"]) for r in self.received(path, accepted_only=True)]

    def wait_for(self, condition, timeout: float = 60.0, what: str = "requests"):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("timed out waiting for %s; received %r" %
                                         (what, [(r["method"], r["path"], r["status"]) for r in self.requests]))
                self._lock.wait(remaining)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
