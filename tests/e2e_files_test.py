"""Path inputs and outputs through the real binary: inputs fetched from a real
local HTTP server (also redirected, missing, slow and stalled) and from data:
URIs; outputs uploaded to it by PUT or returned as data: URIs."""

import base64
import http.server
import json
import os
import shutil
import subprocess
import threading
import unittest

from http_receiver import Receiver
from server_harness import CogServer, wait_until

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
       b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x9a\xa0\x8a"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


def prediction_dirs(server):
    """The prediction directories that exist now under the server's file root."""
    return [e for e in server.temp_entries() if e.startswith("cog-server-") and e.count("/") == 1]


class InputDownloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = Receiver()
        cls.files.files["/img/cat.png"] = PNG
        cls.files.files["/text/a%20b.txt"] = b"spaced"
        cls.files.files["/text/one.txt"] = b"one"
        cls.files.files["/text/two.txt"] = b"two"
        cls.files.files["/text/caf%E9.txt"] = b"latin"
        cls.files.files["/text/" + "%C3%A9" * 150 + "b.txt"] = b"long"
        cls.files.redirects["/old/cat.png"] = "/img/cat.png"
        cls.server = CogServer("path_input")
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.files.close()

    def predict(self, **input):
        status, _, body = self.server.request("POST", "/predictions", {"input": input})
        self.assertEqual(status, 200, body)
        return body

    def test_a_url_is_downloaded_under_its_name_and_removed_afterwards(self):
        link = self.files.url + "/text/one.txt"
        body = self.predict(image=self.files.url + "/img/cat.png", link=link)
        self.assertEqual(body["status"], "succeeded", body["error"])
        out = json.loads(body["output"])
        self.assertEqual(out["image"]["type"], "Path")
        self.assertEqual(out["image"]["name"], "cat.png")
        self.assertEqual(out["image"]["content"].encode("latin-1"), PNG)
        self.assertTrue(out["image"]["path"].startswith(self.server.tmpdir + "/cog-server-"), out)
        self.assertFalse(os.path.exists(out["image"]["path"]), "the prediction's directory is removed")
        self.assertEqual(prediction_dirs(self.server), [])
        self.assertEqual(out["link"], link, "a str holding a URL is left alone")
        self.assertEqual(len(self.files.received("/text/one.txt")), 0, "and never fetched")
        self.assertEqual(body["input"]["image"], self.files.url + "/img/cat.png",
                         "the response shows the URL the client sent")

    def test_data_uris_lists_and_dataclass_fields(self):
        body = self.predict(
            image="data:text/plain;base64," + base64.b64encode(b"hello").decode(),
            images=[self.files.url + "/text/a%20b.txt", "data:image/png;base64," + base64.b64encode(PNG).decode()],
            pair={"a": self.files.url + "/text/one.txt",
                  "b": [self.files.url + "/text/two.txt", self.files.url + "/text/one.txt"]})
        self.assertEqual(body["status"], "succeeded", body["error"])
        out = json.loads(body["output"])
        self.assertEqual(out["image"]["content"], "hello")
        self.assertEqual([i["content"].encode("latin-1") for i in out["images"]], [b"spaced", PNG])
        self.assertEqual(out["images"][0]["name"], "a b.txt")
        self.assertEqual(out["images"][1]["name"], "file.png", "a data: URI gets a sniffed extension")
        self.assertEqual(out["pair"]["a"]["content"], "one")
        self.assertEqual([p["content"] for p in out["pair"]["b"]], ["two", "one"])
        self.assertEqual({p["type"] for p in out["pair"]["b"] + out["images"]}, {"Path"})

    def test_schemes_are_case_insensitive(self):
        # RFC 3986, and legacy Cog (urlparse lowers them): HTTP:// and DATA:
        # were refused as "'http' is not a valid URL scheme".
        body = self.predict(image=self.files.url.replace("http://", "HTTP://") + "/text/one.txt",
                            images=["DATA:text/plain;BASE64," + base64.b64encode(b"upper").decode()])
        self.assertEqual(body["status"], "succeeded", body["error"])
        out = json.loads(body["output"])
        self.assertEqual((out["image"]["content"], out["images"][0]["content"]), ("one", "upper"))

    def test_a_name_that_is_not_utf8_or_too_long_is_made_valid(self):
        # caf%E9 (Latin-1) became a file the predictor was told of as
        # caf\ufffd.txt, which did not exist; so did a name cut inside a character.
        body = self.predict(image=self.files.url + "/text/caf%E9.txt",
                            images=[self.files.url + "/text/" + "%C3%A9" * 150 + "b.txt"])
        self.assertEqual(body["status"], "succeeded", body["error"])
        out = json.loads(body["output"])
        self.assertEqual((out["image"]["name"], out["image"]["content"]), ("caf\ufffd.txt", "latin"))
        self.assertEqual((out["images"][0]["name"], out["images"][0]["content"]), ("\u00e9" * 97 + "b.txt", "long"))

    def test_redirects_are_followed(self):
        body = self.predict(image=self.files.url + "/old/cat.png")
        self.assertEqual(body["status"], "succeeded", body["error"])
        self.assertEqual(json.loads(body["output"])["image"]["content"].encode("latin-1"), PNG)

    def test_a_missing_file_fails_the_prediction_with_a_clear_error(self):
        url = self.files.url + "/img/missing.png"
        body = self.predict(image=self.files.url + "/img/cat.png", images=[url])
        self.assertEqual(body["status"], "failed")
        self.assertIn("images[0]", body["error"])
        self.assertIn(url, body["error"])
        self.assertIn("HTTP 404", body["error"])
        self.assertIsNone(body["output"])
        self.assertEqual(prediction_dirs(self.server), [], "what was fetched is removed too")
        self.assertEqual(self.predict(image=self.files.url + "/img/cat.png")["status"], "succeeded")

    def test_an_unreachable_host_fails_the_prediction(self):
        body = self.predict(image="http://127.0.0.1:9/nothing-listens-here.png")
        self.assertEqual(body["status"], "failed")
        self.assertIn("could not download http://127.0.0.1:9/nothing-listens-here.png", body["error"])

    def test_a_path_that_is_no_url_is_refused_before_anything_runs(self):
        status, _, body = self.server.request("POST", "/predictions", {"input": {"image": "/etc/passwd"}})
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"][0]["type"], "value_error")
        self.assertIn("'' is not a valid URL scheme", body["detail"][0]["msg"])
        self.assertEqual(body["detail"][0]["loc"], ["body", "input", "image"])
        self.assertEqual(body["detail"][0]["input"], "/etc/passwd")

    def test_a_slow_download_blocks_no_one_and_finishes(self):
        self.files.files["/slow/big.bin"] = bytes(range(256)) * 4096
        release = self.files.stalls["/slow/big.bin"] = threading.Event()
        result = {}

        def call():
            result["body"] = self.predict(image=self.files.url + "/slow/big.bin")

        caller = threading.Thread(target=call)
        caller.start()
        try:
            self.files.wait_for(lambda: self.files.received("/slow/big.bin"), what="the download to start")
            self.assertEqual(self.server.health()["status"], "BUSY", "the server answers meanwhile")
            status, _, body = self.server.request("POST", "/predictions",
                                                  {"input": {"image": self.files.url + "/img/cat.png"}})
            self.assertEqual(status, 409, body)
        finally:
            release.set()
            caller.join(60)
        self.assertEqual(result["body"]["status"], "succeeded", result["body"]["error"])
        out = json.loads(result["body"]["output"])
        self.assertEqual(out["image"]["content"].encode("latin-1"), bytes(range(256)) * 4096)

    def test_a_download_can_be_canceled(self):
        self.files.files["/slow/cancel.bin"] = b"x" * 100000
        release = self.files.stalls["/slow/cancel.bin"] = threading.Event()
        try:
            status, _, body = self.server.request(
                "POST", "/predictions", {"id": "dl-cancel", "input": {"image": self.files.url + "/slow/cancel.bin"}},
                headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            self.files.wait_for(lambda: self.files.received("/slow/cancel.bin"), what="the download to start")
            status, _, body = self.server.request("POST", "/predictions/dl-cancel/cancel")
            self.assertEqual(status, 200, body)
            self.server.wait_for_status("READY")
        finally:
            release.set()
        self.assertEqual(prediction_dirs(self.server), [])
        self.assertEqual(self.predict(image=self.files.url + "/img/cat.png")["status"], "succeeded")


class StalledDownloadTest(unittest.TestCase):
    def test_a_stalled_download_times_out_with_a_clear_error(self):
        files = Receiver()
        files.files["/stuck.bin"] = b"y" * 10000
        release = files.stalls["/stuck.bin"] = threading.Event()
        server = CogServer("path_input", args=["--file-stall-timeout", "1"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {"image": files.url + "/stuck.bin"}})
            self.assertEqual(status, 200)
            self.assertEqual(body["status"], "failed")
            self.assertIn("timed out", body["error"])
            self.assertIn(files.url + "/stuck.bin", body["error"])
            self.assertEqual(prediction_dirs(server), [])
        finally:
            release.set()
            server.stop()
            files.close()


class LocalServer:
    """A threading HTTP server for a handler class on a free loopback port,
    until close(); `closed` is set then, for handlers that wait on it."""

    def _serve(self, handler, path):
        self.closed = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def close(self):
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


class UnlimitedSource(LocalServer):
    """An HTTP/1.0 server whose answers have no Content-Length: `size` bytes
    sent as fast as it can, or one byte every `gap` seconds, until closed.
    With `location`, an HTTP/1.1 redirect there whose body is chunked."""

    def __init__(self, size=0, gap=0.0, status=200, location=None):
        source = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if location else "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(source.status)
                if location:
                    self.send_header("Location", location)
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if source.gap:
                        while not source.closed.is_set():
                            self.wfile.write(b"z")
                            self.wfile.flush()
                            source.closed.wait(source.gap)
                    else:
                        chunk = b"z" * 65536
                        if location:
                            chunk = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                        for _ in range(source.size // 65536):
                            self.wfile.write(chunk)
                except OSError:
                    pass  # the server gave up on it

        self.size, self.gap, self.status = size, gap, status
        self._serve(Handler, "/file.bin")


class DownloadBoundsTest(unittest.TestCase):
    def test_a_download_past_max_download_bytes_fails_and_leaves_nothing(self):
        # Known length (Content-Length) and unknown (until the close): any
        # client could otherwise fill the server's disk with one URL.
        known = Receiver()
        self.addCleanup(known.close)
        known.files["/big.bin"] = b"x" * (3 << 20)
        unknown = UnlimitedSource(size=64 << 20)
        self.addCleanup(unknown.close)
        server = CogServer("path_input", args=["--max-download-bytes", str(1 << 20)])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        for url in (known.url + "/big.bin", unknown.url):
            status, _, body = server.request("POST", "/predictions", {"input": {"image": url}}, timeout=60)
            self.assertEqual((status, body["status"]), (200, "failed"), body)
            self.assertIn("could not download %s: it is larger than --max-download-bytes (1048576 bytes)" % url,
                          body["error"])
            self.assertEqual(prediction_dirs(server), [])
        # An error page larger than the bound is an error page, not too large.
        missing = UnlimitedSource(size=4 << 20, status=404)
        self.addCleanup(missing.close)
        status, _, body = server.request("POST", "/predictions", {"input": {"image": missing.url}}, timeout=60)
        self.assertEqual((status, body["status"]), (200, "failed"), body)
        self.assertIn("could not download %s: the server answered HTTP 404" % missing.url, body["error"])
        known.files["/small.bin"] = b"s" * 1000
        status, _, body = server.request("POST", "/predictions", {"input": {"image": known.url + "/small.bin"}})
        self.assertEqual(body["status"], "succeeded", body.get("error"))
        self.assertEqual(server.stop(), 0)

    def test_an_error_page_without_end_fails_the_download_at_once(self):
        # A 404 (or a redirect) whose body never ended held the prediction and
        # its slot for good: its bytes came too fast for the stall rule.
        server = CogServer("path_input")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        # A redirect's body libcurl reads itself, to follow it: the cap is
        # kept by the transfer's progress there.
        for status_code, location in ((404, None), (302, "/elsewhere")):
            endless = UnlimitedSource(size=1 << 40, status=status_code, location=location)
            self.addCleanup(endless.close)
            status, _, body = server.request("POST", "/predictions", {"input": {"image": endless.url}}, timeout=60)
            self.assertEqual((status, body["status"]), (200, "failed"), body)
            self.assertIn("could not download %s: the server answered HTTP %d with a body of more than 65536 bytes "
                          "(left unread)" % (endless.url, status_code), body["error"])
        self.assertEqual(prediction_dirs(server), [])
        self.assertEqual(server.health()["status"], "READY")
        self.assertEqual(server.stop(), 0)

    @unittest.skipIf(shutil.which("prlimit") is None, "needs util-linux's prlimit")
    def test_a_file_size_limit_fails_the_download_not_the_server(self):
        # Past RLIMIT_FSIZE a write raises SIGXFSZ, whose default action
        # ended the server; ignored, the write fails and so does the download.
        known = Receiver()
        self.addCleanup(known.close)
        known.files["/big.bin"] = b"x" * (3 << 20)
        server = CogServer("path_input")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        subprocess.run(["prlimit", "--pid", str(server.process.pid), "--fsize=1000000"], check=True)
        status, _, body = server.request("POST", "/predictions", {"input": {"image": known.url + "/big.bin"}})
        self.assertEqual((status, body["status"]), (200, "failed"), body)
        self.assertIn("could not download " + known.url + "/big.bin", body["error"])
        self.assertEqual(server.health()["status"], "READY")
        self.assertEqual(prediction_dirs(server), [])
        self.assertEqual(server.stop(), 0)

    def test_a_download_trickling_below_the_minimum_rate_fails(self):
        # One byte every 0.2 s never stalls outright; below --min-body-rate
        # over --file-stall-timeout it is abandoned.
        source = UnlimitedSource(gap=0.2)
        self.addCleanup(source.close)
        server = CogServer("path_input", args=["--file-stall-timeout", "2"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        status, _, body = server.request("POST", "/predictions", {"input": {"image": source.url}}, timeout=60)
        self.assertEqual((status, body["status"]), (200, "failed"), body)
        self.assertIn("fewer than 4096 bytes a second moved for 2s", body["error"])
        self.assertEqual(prediction_dirs(server), [])
        self.assertEqual(server.stop(), 0)


NESTED_OUTPUTS = {
    "cog.yaml": 'predict: "predict.py:Predictor"\n',
    "predict.py": '''
import os
import tempfile
from typing import List

from cog import BaseModel, BasePredictor, Path

PNG = %r


class Output(BaseModel):
    main: Path
    extras: List[Path]
    note: str


class Predictor(BasePredictor):
    def predict(self) -> Output:
        directory = tempfile.mkdtemp()
        picture = Path(os.path.join(directory, "picture.png"))
        picture.write_bytes(PNG)
        text = Path(os.path.join(directory, "notes.txt"))
        text.write_text("some notes")
        return Output(main=picture, extras=[text, picture], note="file:// in a str is no file")
''' % PNG,
}


class UploadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver()
        cls.server = CogServer("file_output", args=["--upload-url", cls.receiver.url + "/upload/"])
        cls.server.wait_for_status("READY")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.receiver.close()

    def puts(self, path):
        return [r for r in self.receiver.received(path) if r["method"] == "PUT"]

    def test_sync_output_is_uploaded_and_becomes_the_url(self):
        status, _, body = self.server.request("POST", "/predictions", {"id": "up-1", "input": {"text": "hello"}})
        self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        self.assertEqual(body["output"], [self.receiver.url + "/upload/out%200.txt"])
        [put] = self.puts("/upload/out%200.txt")
        self.assertEqual(put["body"], b"hello 0")
        self.assertEqual(put["headers"]["content-type"], "text/plain")
        self.assertEqual(put["headers"]["x-prediction-id"], "up-1")

    def test_output_file_prefix_takes_precedence_and_location_is_the_output(self):
        self.receiver.locations["/prefix/out%200.txt"] = "https://cdn.example.com/kept/out.txt?signature=abc"
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "p"}, "output_file_prefix": self.receiver.url + "/prefix"})
        self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        self.assertEqual(body["output"], ["https://cdn.example.com/kept/out.txt"])
        self.assertEqual(self.puts("/prefix/out%200.txt")[0]["body"], b"p 0")

    def test_a_password_in_the_upload_url_is_not_given_back(self):
        prefix = self.receiver.url.replace("://", "://up-user:up-secret@") + "/with-password"
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "pw"}, "output_file_prefix": prefix})
        self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        self.assertEqual(body["output"], [self.receiver.url + "/with-password/out%200.txt"])
        [put] = self.puts("/with-password/out%200.txt")
        self.assertEqual(put["body"], b"pw 0")  # sent with it all the same
        self.assertNotIn("up-secret", json.dumps(body))

    def test_a_prefix_that_is_no_http_url_is_refused(self):
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "p"}, "output_file_prefix": "s3://bucket/x/"})
        self.assertEqual(status, 422, body)
        self.assertEqual(body["detail"][0]["loc"], ["body", "output_file_prefix"])

    def test_uploads_are_retried_on_5xx_and_a_refusal_fails_the_prediction(self):
        self.receiver.failures["/retry/out%200.txt"] = [500, 503]
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "r"}, "output_file_prefix": self.receiver.url + "/retry/"})
        self.assertEqual(body["status"], "succeeded", body["error"])
        self.assertEqual([p["status"] for p in self.puts("/retry/out%200.txt")], [500, 503, 200])

        self.receiver.failures["/denied/out%200.txt"] = [403]
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "d"}, "output_file_prefix": self.receiver.url + "/denied/"})
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "failed")
        self.assertIn("HTTP 403", body["error"])
        self.assertIn("out 0.txt", body["error"])
        self.assertEqual(len(self.puts("/denied/out%200.txt")), 1, "a 4xx is not retried")

    def test_iterator_outputs_each_uploaded_once_before_their_webhook(self):
        status, _, body = self.server.request(
            "POST", "/predictions",
            {"id": "up-iter", "input": {"text": "it", "mode": "same"}, "webhook": self.receiver.url + "/hook"},
            headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, body)
        self.receiver.wait_for(lambda: any(b["status"] == "succeeded" for b in self.receiver.bodies("/hook")
                                           if b["id"] == "up-iter"), what="the completed webhook")
        url = self.receiver.url + "/upload/same.txt"
        hooks = [b for b in self.receiver.bodies("/hook") if b["id"] == "up-iter"]
        self.assertEqual(hooks[-1]["output"], [url, url])
        puts = self.puts("/upload/same.txt")
        self.assertEqual(len(puts), 1, "the same file returned twice is uploaded once")
        first_output_hook = next(r for r in self.receiver.received("/hook")
                                 if json.loads(r["body"])["id"] == "up-iter" and json.loads(r["body"])["output"])
        self.assertLess(puts[0]["time"], first_output_hook["time"])

    def test_ten_mebibytes_uploaded_whole(self):
        size = 10 << 20
        status, _, body = self.server.request("POST", "/predictions", {"input": {"text": "big", "size": size}})
        self.assertEqual(body["status"], "succeeded", body["error"])
        [put] = self.puts("/upload/out%200.txt")[-1:]
        self.assertEqual(len(put["body"]), size)
        self.assertEqual(put["body"], bytes((i * 7919 + 13) % 251 for i in range(256)) * (size // 256))
        self.assertEqual(put["headers"]["content-type"], "application/octet-stream")


class HostileUploadTarget(LocalServer):
    """Takes a PUT's body, then answers 200 with a chunked body that never
    ends ("endless"), or answers nothing until closed ("hang")."""

    def __init__(self, mode):
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target.received.set()
                try:
                    if mode == "hang":
                        target.closed.wait(120)
                        return
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
                    while not target.closed.is_set():
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the server gave up on it

        self.received = threading.Event()
        self._serve(Handler, "/up")


class HostileUploadTest(unittest.TestCase):
    def setUp(self):
        self.server = CogServer("file_output")
        self.addCleanup(self.server.close)
        self.server.wait_for_status("READY")

    def test_an_answer_without_end_is_left_and_the_upload_counts(self):
        # The PUT's answer was read to its end: one that never ended held the
        # slot for good, past cancels, and shutdown ended by its watchdog.
        target = HostileUploadTarget("endless")
        self.addCleanup(target.close)
        status, _, body = self.server.request(
            "POST", "/predictions", {"input": {"text": "t"}, "output_file_prefix": target.url}, timeout=60)
        self.assertEqual((status, body["status"]), (200, "succeeded"), body)
        self.assertEqual(body["output"], [target.url + "/out%200.txt"])
        self.assertEqual(self.server.stop(), 0)

    def test_an_upload_waiting_for_its_answer_is_canceled(self):
        target = HostileUploadTarget("hang")
        self.addCleanup(target.close)
        status, _, body = self.server.request(
            "POST", "/predictions", {"id": "held", "input": {"text": "t"}, "output_file_prefix": target.url},
            headers={"Prefer": "respond-async"})
        self.assertEqual(status, 202, body)
        self.assertTrue(target.received.wait(30), "the upload never came")
        self.assertEqual(self.server.health()["status"], "BUSY")
        self.assertEqual(self.server.request("POST", "/predictions/held/cancel")[0], 200)
        ended = wait_until(lambda: (lambda b: b if b["status"] not in ("starting", "processing") else None)(
            self.server.request("GET", "/predictions/held")[2]), timeout=10, what="the prediction to end")
        self.assertEqual(ended["status"], "canceled", ended)
        self.assertEqual(self.server.wait_for_status("READY")["status"], "READY")
        self.assertEqual(self.server.stop(), 0)


class OddOutputFileTest(unittest.TestCase):
    """Path outputs that are no regular file, or too large for a data: URI,
    fail their own prediction with a message that says why; the server
    serves on. A directory took the server down (std::bad_alloc), a named
    pipe hung the prediction, its cancel and the server's shutdown, and a
    1 GiB file took 2.8 GB of the server's memory past --max-output-bytes."""

    LIMIT = 1_000_000

    def check(self, server, kind, message, size=0, count=1):
        status, _, body = server.request("POST", "/predictions",
                                         {"input": {"kind": kind, "size": size, "count": count}}, timeout=30)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "failed", body)
        self.assertIn(message, body["error"])
        self.assertEqual(server.health()["status"], "READY")
        status, _, fine = server.request("POST", "/predictions", {"input": {"kind": "fine"}})
        self.assertEqual((status, fine["status"]), (200, "succeeded"), fine)
        return body

    def test_as_data_uris(self):
        server = CogServer("odd_files", args=["--max-output-bytes", str(self.LIMIT)])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        self.check(server, "directory", "is a directory, not a regular file: return the Path of a file")
        self.check(server, "fifo", "is a named pipe, not a regular file")
        self.check(server, "device", "is a device, not a regular file")
        body = self.check(server, "sparse", "over --max-output-bytes (%d); give the server --upload-url" % self.LIMIT,
                          size=1 << 30)
        self.assertIn("is 1073741824 bytes", body["error"])
        # Each under the bound, three over it in all (40 once came to 37 times it).
        body = self.check(server, "sparse", "that with the output's other files would pass --max-output-bytes",
                          size=700_000, count=3)
        # Just under the bound, a data: URI as before.
        status, _, body = server.request("POST", "/predictions", {"input": {"kind": "sparse", "size": 700_000}})
        self.assertEqual(body["status"], "succeeded", body.get("error"))
        self.assertEqual(len(base64.b64decode(body["output"][0].split(",", 1)[1])), 700_000)
        self.assertEqual(server.stop(), 0)

    def test_uploaded(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        server = CogServer("odd_files", args=["--upload-url", receiver.url + "/upload/"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        self.check(server, "directory", "is a directory, not a regular file")
        self.check(server, "fifo", "is a named pipe, not a regular file")
        self.assertEqual([r["path"] for r in receiver.requests if r["method"] == "PUT"],
                         ["/upload/out.bin", "/upload/out.bin"])  # the two fine ones only
        self.assertEqual(server.stop(), 0)


class NestedOutputTest(unittest.TestCase):
    def test_paths_nested_in_objects_and_lists(self):
        receiver = Receiver()
        server = CogServer(files=NESTED_OUTPUTS, args=["--upload-url", receiver.url + "/u"])
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {}})
            self.assertEqual(body["status"], "succeeded", body["error"])
            picture, notes = receiver.url + "/u/picture.png", receiver.url + "/u/notes.txt"
            self.assertEqual(body["output"], {"main": picture, "extras": [notes, picture],
                                              "note": "file:// in a str is no file"})
            self.assertEqual(len([r for r in receiver.received("/u/picture.png")]), 1)
            [png] = receiver.received("/u/picture.png")
            self.assertEqual((png["body"], png["headers"]["content-type"]), (PNG, "image/png"))
        finally:
            server.stop()
            receiver.close()

    def test_without_an_upload_url_nested_paths_are_data_uris(self):
        server = CogServer(files=NESTED_OUTPUTS)
        try:
            server.wait_for_status("READY")
            status, _, body = server.request("POST", "/predictions", {"input": {}})
            self.assertEqual(body["status"], "succeeded", body["error"])
            picture = "data:image/png;base64," + base64.b64encode(PNG).decode()
            self.assertEqual(body["output"]["main"], picture)
            self.assertEqual(body["output"]["extras"],
                             ["data:text/plain;base64," + base64.b64encode(b"some notes").decode(), picture])
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
