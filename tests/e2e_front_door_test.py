"""The HTTP front door through the real binary, with raw sockets: bodies and
heads over their limits are refused early with a status that names the limit
and cost the server no memory; slow, idle and half-open clients cannot starve
/health-check or predictions; too many connections get 503; a busy port is a
clear error."""

import http.client
import json
import os
import re
import select
import socket
import statistics
import subprocess
import tempfile
import shutil
import time
import unittest

from server_harness import SERVER_BINARY, CogServer, rss_kib, wait_until


def threads_of(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def connect(server: CogServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes (the socket's timeout fails the test)."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def read_buffered_response(responses):
    """(status, parsed JSON body) of the next response read off `responses` (a
    socket's buffered reader); what came after it stays buffered for the next call."""
    status_line = responses.readline()
    if not status_line:
        raise AssertionError("connection closed before a response")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = responses.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = responses.read(length)
    return status, json.loads(body) if length else None


def read_response(sock: socket.socket):
    """(status, parsed JSON body) of one response read off `sock`. A response that
    came in the same read is dropped: pipelining reads through read_buffered_response."""
    with sock.makefile("rb") as responses:
        return read_buffered_response(responses)


def send_ignoring_close(sock: socket.socket, data: bytes):
    """Sends what the server still reads; a server that has answered and closed
    may reset the rest, which is not the point of these tests."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def read_slowly_until_cut_off(server: CogServer, rest_of_request: bytes):
    """POSTs /predictions (`rest_of_request`: the last header fields, the blank line and
    the body), then reads the answer at ~80 KB/s through an 8 KiB receive buffer until
    the server ends the connection or 60 s pass: ("reset" / "closed" / None, seconds, bytes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.http_port))
    sock.sendall(b"POST /predictions HTTP/1.1\r\nContent-Type: application/json\r\n" + rest_of_request)
    start = time.monotonic()
    received = 0
    ended = None
    while time.monotonic() - start < 60:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            ended = "reset"
            break
        if not chunk:
            ended = "closed"
            break
        received += len(chunk)
        time.sleep(0.05)
    waited = time.monotonic() - start
    sock.close()
    return ended, waited, received


def timed_health(server: CogServer, timeout: float = 2.0):
    """(seconds, status) of one GET /health-check on a new connection."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=timeout)
    try:
        connection.request("GET", "/health-check")
        response = connection.getresponse()
        body = json.loads(response.read())
        return time.monotonic() - start, response.status, body
    finally:
        connection.close()


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("echo", args=["--max-body-bytes", "1000"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def assert_still_serving(self):
        self.assertEqual(self.server.health()["status"], "READY")
        status, _, body = self.server.request("POST", "/predictions", {"input": {"s": "still here"}})
        self.assertEqual((status, body["output"]), (200, "still here"))

    def test_a_chunked_body_over_the_limit_is_413_before_it_is_sent_and_costs_no_memory(self):
        pid = self.server.process.pid
        before = rss_kib(pid)
        sock = connect(self.server)
        sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        sent, total = 0, 300 << 20
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came: stop sending, as curl does
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 0x10000
        status, body = read_response(sock)
        sock.close()
        after = rss_kib(pid)
        print("chunked body over a 1000-byte limit: answered after %d KiB of %d MiB sent; "
              "server RSS %d -> %d KiB" % (sent >> 10, total >> 20, before, after))
        self.assertEqual(status, 413)
        self.assertEqual(body["detail"],
                         "Request body is larger than 1000 bytes; raise --max-body-bytes to accept it")
        self.assertLess(sent, total, "the answer came before the whole body was sent")
        self.assertLess(after - before, 32 << 10, "the body was not kept")
        self.assert_still_serving()

    def test_a_chunked_body_within_the_limit_is_served(self):
        sock = connect(self.server)
        body = json.dumps({"input": {"s": "in chunks"}}).encode()
        sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" +
                     b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:]))
        status, answer = read_response(sock)
        sock.close()
        self.assertEqual((status, answer["output"]), (200, "in chunks"))

    def test_a_content_length_over_the_limit_is_413_without_reading_the_body(self):
        sock = connect(self.server)
        sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n")
        status, body = read_response(sock)
        sock.close()
        self.assertEqual(status, 413)
        self.assertIn("larger than 1000 bytes", body["detail"])

    def test_200_headers_is_431_naming_the_limit(self):
        sock = connect(self.server)
        headers = b"".join(b"X-Header-%d: value\r\n" % i for i in range(200))
        send_ignoring_close(sock, b"GET /health-check HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status, body = read_response(sock)
        sock.close()
        self.assertEqual(status, 431)
        self.assertIn("more than 100 header fields", body["detail"])
        self.assertIn("--max-headers", body["detail"])
        self.assert_still_serving()

    def test_megabyte_header_lines_are_431_and_their_memory_is_not_kept(self):
        pid = self.server.process.pid
        before = rss_kib(pid)
        for _ in range(16):
            sock = connect(self.server)
            send_ignoring_close(sock, b"GET /health-check HTTP/1.1\r\nX-Big: " + b"v" * (1 << 20) + b"\r\n\r\n")
            status, body = read_response(sock)
            sock.close()
            self.assertEqual(status, 431)
            self.assertIn("header field is longer than", body["detail"])
        after = rss_kib(pid)
        print("16 requests with a 1 MiB header line: server RSS %d -> %d KiB" % (before, after))
        self.assertLess(after - before, 16 << 10)
        self.assert_still_serving()

    def test_a_head_over_max_header_bytes_is_431_naming_the_flag(self):
        sock = connect(self.server)
        headers = b"".join(b"X-Header-%d: %s\r\n" % (i, b"v" * 4000) for i in range(20))
        send_ignoring_close(sock, b"GET /health-check HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status, body = read_response(sock)
        sock.close()
        self.assertEqual(status, 431)
        self.assertIn("raise --max-header-bytes", body["detail"])

    def test_a_long_request_line_is_414(self):
        sock = connect(self.server)
        send_ignoring_close(sock, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n")
        status, body = read_response(sock)
        sock.close()
        self.assertEqual(status, 414)
        self.assertIn("Request line is longer than", body["detail"])

    def test_a_second_server_on_the_same_port_exits_non_zero_naming_the_port(self):
        tmp = tempfile.mkdtemp(prefix="cog-e2e-second-")
        try:
            second = subprocess.run(
                [SERVER_BINARY, "--working-directory", self.server.workdir, "--host", "127.0.0.1",
                 "--port", str(self.server.http_port), "--grpc-port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                env=dict(os.environ, TMPDIR=tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        output = second.stdout.decode(errors="replace")
        self.assertNotEqual(second.returncode, 0, output)
        self.assertIn("127.0.0.1:%d" % self.server.http_port, output)
        self.assertIn("in use", output)
        self.assert_still_serving()


class BodyBudgetTest(unittest.TestCase):
    def test_bodies_held_past_the_budget_are_503_and_the_server_serves_on(self):
        # Bodies sent at once and then trickled held ~100 MiB each for hours:
        # a few hundred connections took the server past the machine's memory.
        # The budget is raised to --max-body-bytes (3 MiB) at least: one body
        # of the largest size is always taken, a second that would pass it not.
        server = CogServer("echo", args=["--max-body-bytes", str(3 << 20), "--max-buffered-body-bytes", "1"])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")
        head = ("POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (3 << 20)).encode()
        claimer = connect(server)  # a length only claimed counts nothing
        self.addCleanup(claimer.close)
        claimer.sendall(head + b'{"input": {"s": "')
        holder = connect(server)
        self.addCleanup(holder.close)
        holder.sendall(head + b'{"input": {"s": "' + b"y" * ((3 << 20) - 21))  # all but its end: counted

        def body_bytes():
            metrics = server.request("GET", "/metrics")[2]
            return int(re.search(r"^cog_http_request_body_bytes (\d+)$", metrics, re.M).group(1))
        wait_until(lambda: body_bytes() == 3 << 20, what="the holder's body to be counted")
        second = connect(server)
        self.addCleanup(second.close)
        second.sendall(head)
        status, body = read_response(second)
        self.assertEqual(status, 503)
        self.assertIn("would pass its limit, --max-buffered-body-bytes=%d; retry shortly" % (3 << 20), body["detail"])
        self.assertEqual(server.health()["status"], "READY")  # small bodies are not counted
        status, _, answer = server.request("POST", "/predictions", {"input": {"s": "small"}})
        self.assertEqual((status, answer["output"]), (200, "small"))
        holder.sendall(b"y" + b'"}}')
        status, answer = read_response(holder)
        self.assertEqual((status, len(answer["output"])), (200, (3 << 20) - 20))
        third = connect(server)  # the holder's share was given back
        self.addCleanup(third.close)
        third.sendall(head + b'{"input": {"s": "' + b"z" * ((3 << 20) - 20) + b'"}}')
        self.assertEqual(read_response(third)[0], 200)


class ParseBoundsTest(unittest.TestCase):
    def test_a_body_of_more_values_than_the_server_reads_is_422_before_they_are_built(self):
        # A 100 MB list of zeros took 2.9 GB as a tree: the values a body is
        # read into are bounded (--max-buffered-body-bytes / 64, at least 2^20).
        server = CogServer("echo", args=["--max-buffered-body-bytes", "1"])
        self.addCleanup(server.stop)
        server.wait_for_status("READY")

        def post(values):
            body = '{"input": {"s": "x", "extra": [' + ",".join(["0"] * values) + "]}}"
            return server.request("POST", "/predictions", raw=body.encode(),
                                  headers={"Content-Type": "application/json"}, timeout=60)

        status, _, body = post(1100000)
        self.assertEqual((status, body["detail"][0]["type"]), (422, "json_invalid"), body)
        self.assertIn("the JSON holds more than 1048576 values", body["detail"][0]["ctx"]["error"])
        status, _, body = post(1000000)
        self.assertEqual((status, body["output"]), (200, "x"))


class EchoServerTest(unittest.TestCase):
    """One server on the echo predictor for the class's tests."""

    @classmethod
    def setUpClass(cls):
        cls.server = CogServer("echo")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()


class HttpClientsTest(EchoServerTest):
    """What real HTTP clients do besides keep-alive POSTs, against the real binary."""

    def curl(self, *args, body=None):
        with tempfile.NamedTemporaryFile() as f:
            if body is not None:
                f.write(body)
                f.flush()
                args += ("--data-binary", "@" + f.name)
            return subprocess.run(["curl", "-sS", "-v", "--max-time", "20", *args],
                                  capture_output=True, timeout=60)

    def test_curl_waits_for_100_continue_before_a_large_body_and_gets_its_answer(self):
        # curl asks for 100 Continue before a body over 1 MiB; with a 30 s
        # timeout for it, only a server that answers it is done within 20 s.
        text = "y" * (2 << 20)
        result = self.curl("--expect100-timeout", "30", "-H", "Content-Type: application/json",
                           "http://127.0.0.1:%d/predictions" % self.server.http_port,
                           body=json.dumps({"input": {"s": text}}).encode())
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn(b"Expect: 100-continue", result.stderr)
        self.assertIn(b"HTTP/1.1 100 Continue", result.stderr)
        self.assertEqual(json.loads(result.stdout)["output"], text)

    def test_head_gets_the_head_of_get_without_a_body(self):
        result = self.curl("-I", "http://127.0.0.1:%d/health-check" % self.server.http_port)
        self.assertEqual(result.returncode, 0, result.stderr)
        head = result.stdout.decode()
        self.assertTrue(head.startswith("HTTP/1.1 200 OK\r\n"), head)
        length = int([line.split(":")[1] for line in head.split("\r\n")
                      if line.lower().startswith("content-length:")][0])
        self.assertEqual(length, len(json.dumps(self.server.health(), separators=(",", ":")).encode()))

    def test_http_1_0_is_answered_and_closed(self):
        sock = connect(self.server)
        body = json.dumps({"input": {"s": "old"}}).encode()
        sock.sendall(b"POST /predictions HTTP/1.0\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status, answer = read_response(sock)
        self.assertEqual((status, answer["output"]), (200, "old"))
        sock.settimeout(10)
        self.assertEqual(sock.recv(1), b"", "the connection is closed after the answer")
        sock.close()

    def test_a_percent_encoded_id_in_the_path_is_the_decoded_id(self):
        status, _, body = self.server.request("PUT", "/predictions/an%20id%2B1", {"input": {"s": "x"}})
        self.assertEqual((status, body["id"]), (200, "an id+1"))
        status, _, body = self.server.request("GET", "/predictions/an%20id%2B1")
        self.assertEqual((status, body["id"], body["output"]), (200, "an id+1", "x"))

    def test_prefer_and_accept_are_read_as_lists_across_fields(self):
        # They were substrings of the first field: "no-respond-async" meant
        # async, a second Prefer field was not read, and q=0 still chose SSE.
        def post(*fields):
            sock = connect(self.server)
            body = b'{"input": {"s": "x"}}'
            sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                         b"".join(f.encode() + b"\r\n" for f in fields) +
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            answer = read_until_closed(sock)
            sock.close()
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            self.server.wait_for_status("READY")  # an async one has ended: the next gets the slot
            return int(head.split()[1]), "content-type: text/event-stream" in head

        self.assertEqual(post("Prefer: no-respond-async"), (200, False))
        self.assertEqual(post('Prefer: foo="respond-async"'), (200, False))
        self.assertEqual(post("Prefer: wait=1", "Prefer: respond-async"), (202, False))
        self.assertEqual(post("Prefer: wait=1, Respond-Async; x=y"), (202, False))
        self.assertEqual(post("Accept: text/event-stream;q=0, application/json"), (200, False))
        self.assertEqual(post("Accept: application/json", "Accept: text/event-stream; q=0.5"), (200, True))

    def test_an_id_holding_a_slash_is_reached_as_percent_2f(self):
        # The path was decoded before it was split: an id "a/b" was taken in a
        # body and then could never be fetched or canceled.
        status, _, body = self.server.request("POST", "/predictions", {"id": "a/b", "input": {"s": "y"}})
        self.assertEqual((status, body["id"]), (200, "a/b"))
        status, _, body = self.server.request("GET", "/predictions/a%2Fb")
        self.assertEqual((status, body["id"], body["output"]), (200, "a/b", "y"))
        status, _, body = self.server.request("PUT", "/predictions/c%2fd", {"input": {"s": "z"}})
        self.assertEqual((status, body["id"]), (200, "c/d"))
        status, _, body = self.server.request("POST", "/predictions/c%2Fd/cancel")
        self.assertEqual((status, body), (404, {}))  # the cancel route's answer (ended), not "Not Found"
        self.assertEqual(self.server.request("GET", "/predictions/a/b")[0], 404)  # two segments: no route
        self.assertEqual(self.server.request("GET", "/health%2Dcheck")[0], 200)  # segments are decoded


class SlowClientsTest(unittest.TestCase):
    def test_64_half_open_and_64_idle_connections_leave_health_and_predictions_answering(self):
        server = CogServer("echo")
        half_open, idle = [], []
        try:
            server.wait_for_status("READY")
            unloaded = sorted(timed_health(server)[0] for _ in range(20))
            rss_before = rss_kib(server.process.pid)
            for _ in range(64):
                sock = connect(server)
                sock.sendall(b"GET /health-che")  # half a request line, then nothing
                half_open.append(sock)
            for _ in range(64):
                connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
                connection.request("GET", "/health-check")  # one request, then idle, kept alive
                response = connection.getresponse()
                response.read()
                self.assertEqual(response.status, 200)
                idle.append(connection)
            loaded = []
            for _ in range(20):
                seconds, status, body = timed_health(server, timeout=2.0)
                self.assertEqual((status, body["status"]), (200, "READY"))
                loaded.append(seconds)
            loaded.sort()
            print("/health-check on a new connection: unloaded p50 %.2f ms max %.2f ms; with 64 "
                  "half-open + 64 idle keep-alive connections p50 %.2f ms max %.2f ms; server "
                  "threads %d, RSS %d -> %d KiB" % (
                      statistics.median(unloaded) * 1e3, unloaded[-1] * 1e3,
                      statistics.median(loaded) * 1e3, loaded[-1] * 1e3,
                      threads_of(server.process.pid), rss_before, rss_kib(server.process.pid)))
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "through"}},
                                             timeout=10)
            self.assertEqual((status, body["output"]), (200, "through"))
            for connection in idle:  # the idle ones were kept open and still serve
                connection.request("GET", "/health-check")
                response = connection.getresponse()
                response.read()
                self.assertEqual(response.status, 200)
        finally:
            for sock in half_open:
                sock.close()
            for connection in idle:
                connection.close()
            server.stop()

    def test_a_half_open_client_is_answered_408_and_closed_after_the_header_timeout(self):
        server = CogServer("echo", args=["--header-timeout", "1"])
        try:
            server.wait_for_status("READY")
            sock = connect(server, timeout=30)
            start = time.monotonic()
            sock.sendall(b"POST /predictions HTTP/1.1\r\nContent-Le")
            received = read_until_closed(sock)
            waited = time.monotonic() - start
            sock.close()
            print("a half-open client with --header-timeout 1 was closed after %.2f s" % waited)
            self.assertTrue(received.startswith(b"HTTP/1.1 408 "), received)
            self.assertIn(b"Request headers were not complete within 1s", received)
            self.assertEqual(server.health()["status"], "READY")
        finally:
            server.stop()

    def test_a_body_trickled_below_min_body_rate_is_408_after_the_header_timeout(self):
        # Each byte comes well within the 5 s a read may wait: only the rate
        # (--min-body-rate, counted from --header-timeout on) ends it.
        server = CogServer("echo", args=["--header-timeout", "1", "--min-body-rate", "100"])
        try:
            server.wait_for_status("READY")
            sock = connect(server, timeout=30)
            body = json.dumps({"input": {"s": "x" * 2000}}).encode()
            start = time.monotonic()
            sock.sendall(b"POST /predictions HTTP/1.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            for byte in body:  # ~20 bytes a second: the whole body would take ~100 s
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break  # refused and closed
                readable, _, _ = select.select([sock], [], [], 0.05)
                if readable:
                    break
                if time.monotonic() - start > 20:
                    break
            received = read_until_closed(sock)
            waited = time.monotonic() - start
            sock.close()
            print("a body trickled at ~20 bytes/s with --min-body-rate 100 was refused after %.2f s"
                  % waited)
            self.assertTrue(received.startswith(b"HTTP/1.1 408 "), received)
            self.assertIn(b"The request body arrived too slowly", received)
            self.assertIn(b"100 bytes/s", received)
            self.assertLess(waited, 15)
            # The server is not held: it serves the next client at once.
            self.assertEqual(server.health()["status"], "READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"s": "after"}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["output"], "after")
        finally:
            server.stop()

    def test_a_client_reading_a_large_answer_below_min_body_rate_is_cut_off(self):
        server = CogServer("echo", args=["--header-timeout", "1", "--min-body-rate", "1000000"])
        try:
            server.wait_for_status("READY")
            body = json.dumps({"input": {"s": "y" * (8 << 20)}}).encode()  # echoed twice: 16 MiB
            ended, waited, received = read_slowly_until_cut_off(
                server, b"Content-Length: %d\r\n\r\n" % len(body) + body)
            print("a client reading at ~80 KB/s with --min-body-rate 1000000: %s after %.2f s, "
                  "%d bytes read" % (ended, waited, received))
            self.assertIsNotNone(ended, "the server kept feeding a client below the rate")
            self.assertLess(waited, 30)  # the whole answer would take ~200 s
            self.assertEqual(server.health()["status"], "READY")
            status, _, answer = server.request("POST", "/predictions", {"input": {"s": "after"}})
            self.assertEqual(status, 200, answer)
        finally:
            server.stop()

    def test_an_event_stream_read_below_min_body_rate_is_cut_off_and_its_prediction_canceled(self):
        # The runner makes items far faster than the client reads them: by the
        # cut-off the prediction may hold more than the default 32 MiB that
        # the store of ended predictions keeps, and GET would answer 404.
        server = CogServer("async_gen_many", args=["--header-timeout", "1", "--min-body-rate", "1000000",
                                                   "--finished-predictions-max-bytes", str(1 << 30)])
        try:
            server.wait_for_status("READY")
            body = json.dumps({"id": "slow-reader", "input": {"tag": "x" * 64, "n": 2_000_000}}).encode()
            ended, waited, received = read_slowly_until_cut_off(
                server, b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            print("an event stream read at ~80 KB/s with --min-body-rate 1000000: %s after %.2f s, "
                  "%d bytes read" % (ended, waited, received))
            self.assertIsNotNone(ended, "the server kept feeding a client below the rate")
            self.assertGreater(received, 0)
            self.assertLess(waited, 30)  # its ~150 MB of events would take half an hour
            # The stream's end canceled its prediction, which was far from done.
            def ended_prediction():
                status, _, prediction = server.request("GET", "/predictions/slow-reader")
                self.assertEqual(status, 200, prediction)
                return prediction if prediction["status"] in ("canceled", "succeeded", "failed") else None

            final = wait_until(ended_prediction, timeout=30, what="the prediction's end")
            self.assertEqual(final["status"], "canceled", final.get("error"))
            self.assertEqual(server.health()["status"], "READY")
            status, _, answer = server.request("POST", "/predictions", {"input": {"tag": "after", "n": 2}})
            self.assertEqual((status, answer["output"][0]), (200, "after-0"), answer)
        finally:
            server.stop()

    def test_connections_over_max_connections_are_503_until_one_closes(self):
        server = CogServer("echo", args=["--max-connections", "4"])
        idle = []
        try:
            server.wait_for_status("READY")
            for _ in range(4):
                connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
                connection.request("GET", "/health-check")
                response = connection.getresponse()
                response.read()
                idle.append(connection)
            status, headers, body = server.request("GET", "/health-check", timeout=10)
            self.assertEqual(status, 503)
            self.assertIn("--max-connections", body["detail"])
            self.assertEqual(headers.get("retry-after"), "1")
            idle.pop().close()

            def served():
                try:
                    return server.request("GET", "/health-check", timeout=10)[0] == 200
                except OSError:
                    return False
            wait_until(served, timeout=10, what="a free connection to be served")
        finally:
            for connection in idle:
                connection.close()
            server.stop()


class ConnectionFloodTest(unittest.TestCase):
    def test_a_flood_of_idle_connections_does_not_delay_the_503_of_the_next(self):
        # 400 connections that send nothing and never close, over a limit of
        # 4: each is told 503 at once, and a probe on a fresh connection gets
        # its 503 within a kubelet probe's timeout, and a 200 once the flood
        # is gone (the 503s were told on 16 spare threads, each waiting 2 s
        # for its client to close: the probe waited ~50 s).
        server = CogServer("echo", args=["--max-connections", "4", "--header-timeout", "60"])
        flood = []
        try:
            server.wait_for_status("READY")
            for _ in range(400):
                flood.append(socket.create_connection(("127.0.0.1", server.http_port), timeout=30))
            status, headers, body = server.request("GET", "/health-check", timeout=3)
            self.assertEqual(status, 503)
            self.assertIn("--max-connections", body["detail"])
            self.assertEqual(headers.get("retry-after"), "1")
            # The refused ones got their answer too, and were closed after it.
            answer = read_until_closed(flood[-1])
            self.assertTrue(answer.startswith(b"HTTP/1.1 503 "), answer[:100])
            self.assertLess(threads_of(server.process.pid), 100)
            for sock in flood:
                sock.close()
            flood = []
            wait_until(lambda: server.request("GET", "/health-check", timeout=3)[0] == 200, timeout=20,
                       what="the server to serve again once the flood closed")
        finally:
            for sock in flood:
                sock.close()
            server.stop()


class SyncAnswersOnOneConnectionTest(EchoServerTest):
    """A sync prediction's answer is sent by the thread that reads the runner's
    end, while the connection's thread waits on the client's socket: whatever
    the client does meanwhile, each request gets its whole answer, in order."""

    @staticmethod
    def post(text: str, extra: str = "") -> bytes:
        body = json.dumps({"input": {"s": text}}).encode()
        return (b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + extra.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def test_back_to_back_requests_each_get_their_answer(self):
        with connect(self.server) as sock:
            for i in range(300):
                sock.sendall(self.post("request %d" % i))
                status, body = read_response(sock)
                self.assertEqual((status, body["output"]), (200, "request %d" % i))

    def test_pipelined_requests_are_answered_in_order_without_stalling(self):
        # The next requests' bytes are in the server's buffer, not the socket,
        # when each answer goes: the connection's thread must not be left to
        # find them at its next periodic check (100 ms), which would make these
        # 40 take 4 s or more.
        started = time.monotonic()
        with connect(self.server) as sock, sock.makefile("rb") as responses:
            sock.sendall(b"".join(self.post("pipelined %d" % i) for i in range(40)))
            for i in range(40):
                status, body = read_buffered_response(responses)
                self.assertEqual((status, body["output"]), (200, "pipelined %d" % i))
        self.assertLess(time.monotonic() - started, 2.0)

    def test_an_answer_larger_than_the_socket_takes_at_once_arrives_whole(self):
        # The reading thread cannot send it all: the connection's thread is woken for the rest.
        text = "".join(chr(ord("a") + i % 26) for i in range(8 << 20))
        with connect(self.server, timeout=60) as sock:
            sock.sendall(self.post(text))
            status, body = read_response(sock)
            self.assertEqual(status, 200)
            self.assertTrue(body["output"] == text and body["input"]["s"] == text)
            sock.sendall(self.post("after"))
            self.assertEqual(read_response(sock)[1]["output"], "after")

    def test_connection_close_is_answered_and_closed(self):
        with connect(self.server) as sock:
            sock.sendall(self.post("last", "Connection: close\r\n"))
            received = read_until_closed(sock)
        self.assertTrue(received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200])
        self.assertIn(b"Connection: close\r\n", received)
        self.assertIn(b'"output":"last"', received)


if __name__ == "__main__":
    unittest.main()
