"""Memory a large transfer took goes back to the system once the server is
idle, through the real binary: a 10 MiB file returned as a data: URI makes
buffers of tens of MB; glibc kept them (per-thread arenas, ~200 MB after a few
such predictions) until the server asked for them to be trimmed."""

import base64
import json
import os
import unittest

from server_harness import CogServer, rss_kib, status_kib, wait_until


class MemoryTest(unittest.TestCase):
    @unittest.skipIf(os.environ.get("COG_SANITIZER"),
                     "a sanitizer's allocator, not glibc's: no malloc_trim, and shadow memory besides")
    def test_rss_after_large_data_uris_falls_back_when_idle(self):
        # No kept results: what stays is what the allocator keeps.
        server = CogServer("file_output", args=["--finished-predictions-max", "0"])
        try:
            server.wait_for_status("READY")
            before = rss_kib(server.process.pid)
            for _ in range(5):
                status, _, body = server.request("POST", "/predictions",
                                                 {"input": {"text": "x", "size": 10 << 20}})
                self.assertEqual(status, 200, body)
                self.assertTrue(body["output"][0].startswith("data:application/octet-stream;base64,"))
            peak = rss_kib(server.process.pid)
            self.assertGreater(peak, before + 30 * 1024, "the transfers should have taken memory")
            wait_until(lambda: rss_kib(server.process.pid) < before + (peak - before) // 3, timeout=20,
                       what="the server's RSS to fall back (before %d KiB, peak %d KiB)" % (before, peak))
        finally:
            self.assertEqual(server.stop(), 0)

    @unittest.skipIf(os.environ.get("COG_SANITIZER"), "a sanitizer's allocator and shadow memory")
    def test_a_large_data_uri_input_costs_a_few_times_its_size_not_more(self):
        # A 42 MB body took 235 MB at its peak: the body was held for the
        # whole prediction, the input copied for the runner, the URI copied
        # when read and again when percent-decoded.
        server = CogServer("path_size")
        try:
            server.wait_for_status("READY")
            data = os.urandom(32 << 20)
            body = json.dumps({"input": {"image": "data:application/octet-stream;base64," +
                                         base64.b64encode(data).decode()}}).encode()
            before = status_kib(server.process.pid, "VmHWM")
            status, _, answer = server.request("POST", "/predictions", raw=body,
                                               headers={"Content-Type": "application/json"}, timeout=120)
            self.assertEqual((status, answer["output"]), (200, len(data)), answer.get("error"))
            grown = status_kib(server.process.pid, "VmHWM") - before
            print("a %.1f MB data: URI body: the server's peak grew by %.1f MB (%.1fx)" % (
                len(body) / 1e6, grown * 1024 / 1e6, grown * 1024 / len(body)))
            self.assertLess(grown * 1024, 4 * len(body))
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_generator_that_never_stops_is_bounded_and_its_memory_goes_back(self):
        # A model yielding without end: its outputs are kept until it ends, so
        # they are bounded in all (--max-output-bytes, here 64 MiB); once it is
        # stopped and failed, the heap they took goes back to the system.
        server = CogServer("hostile_outputs", args=["--max-output-bytes", str(64 << 20)])
        try:
            server.wait_for_status("READY")
            before = rss_kib(server.process.pid)
            status, _, body = server.request("POST", "/predictions", {"input": {"kind": "endless"}},
                                             timeout=120)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["status"], "failed")
            self.assertIn("--max-output-bytes", body["error"])
            peak = rss_kib(server.process.pid)
            if os.environ.get("COG_SANITIZER"):
                return  # its allocator, not glibc's: no malloc_trim, and shadow memory besides
            self.assertLess(peak, before + 256 * 1024, "the outputs took more than the bound allows for")
            wait_until(lambda: rss_kib(server.process.pid) < before + 16 * 1024, timeout=20,
                       what="the server's RSS to fall back (before %d KiB, right after %d KiB)" % (before, peak))
            self.assertEqual(server.request("POST", "/predictions", {"input": {"kind": "fine"}})[2]["output"],
                             "fine")
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
