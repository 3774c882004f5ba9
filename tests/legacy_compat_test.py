"""Replays the exchanges captured from the legacy Cog server
(golden/legacy-reference.md) against the real binary serving the same
predictors, and compares status, headers and bodies field by field. Where
COMPAT.md decides differently from legacy Cog, the table DEVIATIONS says so
and the test checks what we answer instead."""

import json
import os
import re
import unittest

from http_receiver import Receiver
from server_harness import CogServer

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "golden", "legacy-reference.md")
CORPUS = os.path.join(HERE, "schema_corpus")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
LEGACY_WEBHOOK = "http://127.0.0.1:5199"

# title -> (our status, what we answer and why)
DEVIATIONS = {
    "no body at all": (422, "COMPAT: a missing input means {}, then validation says what is required "
                            "(legacy: 500)"),
    "empty JSON object body (no input)": (422, "as above (legacy: 500 from its response model)"),
    "input null": (422, "as above"),
    "valid JSON with Content-Type text/plain": (415, "COMPAT: a body that is not JSON is 415 with a "
                                                     "detail saying so (legacy: 422)"),
}


def parse_reference(path):
    """[(section, title, request, response)]; request = (method, path, headers,
    body bytes), response = (status, headers, body text)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    exchanges, section, title, request, i = [], "", "", None, 0

    def block(start):
        assert lines[start] == "```", (start, lines[start])
        end = lines.index("```", start + 1)
        return lines[start + 1:end], end + 1

    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("### "):
            title, request = line[4:], None
        elif line == "Request:":
            content, i = block(i + 1)
            method, target = content[0].split(" ", 1)
            headers, rest = {}, content[1:]
            while rest and rest[0]:
                name, value = rest[0].split(": ", 1)
                headers[name] = value
                rest = rest[1:]
            request = (method, target, headers, "\n".join(rest[1:]).encode() if rest else None)
            continue
        elif line.startswith("Response: **") and request is not None:
            status = int(line[len("Response: **"):].split(" ")[0])
            content, i = block(i + 1)
            headers, rest = {}, content
            while rest and rest[0]:
                name, value = rest[0].split(": ", 1)
                headers[name.lower()] = value
                rest = rest[1:]
            exchanges.append((section, title, request, (status, headers, "\n".join(rest[1:]))))
            request = None
            continue
        i += 1
    return exchanges


class LegacyReplayTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.exchanges = parse_reference(REFERENCE)
        cls.receiver = Receiver()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.close()

    def assert_prediction_like(self, ours, legacy, status):
        self.assertEqual(list(ours), list(legacy), "every key, in legacy order")
        for key, value in legacy.items():
            if key in ("started_at", "completed_at"):
                if status == 202:
                    continue  # legacy raced to the end here; we answer at the start
                self.assertEqual(ours[key] is None, value is None, key)
                if value is not None:
                    self.assertRegex(ours[key], TIMESTAMP)
            elif key == "id" and value is None:
                self.assertRegex(ours["id"], r"^[a-z0-9]{16,}$", "COMPAT: the server makes an id")
            elif key == "metrics" and value is not None and status != 202:
                self.assertEqual(set(ours["metrics"]), set(value))
                self.assertIsInstance(ours["metrics"]["predict_time"], float)
            elif status == 202 and key in ("output", "status", "completed_at", "metrics", "logs", "error"):
                if key == "status":
                    self.assertIn(ours[key], ("processing", "succeeded"))
            else:
                self.assertEqual(ours[key], value, key)

    def replay(self, section_prefix, server):
        replayed = 0
        for section, title, (method, target, headers, body), (status, legacy_headers, legacy_text) in self.exchanges:
            if not section.startswith(section_prefix) or target == "/shutdown":
                continue
            with self.subTest(title):
                if body is not None:
                    body = body.replace(LEGACY_WEBHOOK.encode(), self.receiver.url.encode())
                if method in ("POST", "PUT") and target.startswith("/predictions"):
                    # The exchanges were captured one at a time, seconds apart: a
                    # respond-async prediction before this one had ended. Replayed
                    # at once, it may still run, and the answer would be a 409.
                    server.wait_for_status("READY")
                ours_status, ours_headers, ours = server.request(method, target, raw=body, headers=headers)
                replayed += 1
                if title in DEVIATIONS:
                    self.assertEqual(ours_status, DEVIATIONS[title][0], (title, ours))
                    self.assertEqual(ours_headers["content-type"], "application/json")
                    if ours_status == 422:
                        self.assertEqual(ours["detail"][0]["type"], "missing")
                    continue
                self.assertEqual(ours_status, status, (title, ours))
                self.assertEqual(ours_headers.get("content-type"), legacy_headers.get("content-type"))
                if "allow" in legacy_headers:
                    self.assertEqual(ours_headers.get("allow"), legacy_headers["allow"])
                legacy = json.loads(legacy_text)
                if title == "GET /":
                    self.assertEqual(list(ours), list(legacy))
                    self.assertEqual(ours, legacy, "cog_version is the Cog release whose API we speak")
                elif target == "/health-check":
                    # COMPAT adds concurrency and version; legacy's fields are all there.
                    self.assertEqual(ours["status"], legacy["status"])
                    self.assertEqual(set(ours["setup"]), set(legacy["setup"]))
                    self.assertEqual((ours["setup"]["status"], ours["setup"]["logs"]),
                                     (legacy["setup"]["status"], legacy["setup"]["logs"]))
                    self.assertRegex(ours["setup"]["completed_at"], TIMESTAMP)
                    self.assertEqual(set(ours) - set(legacy), {"concurrency", "version"})
                elif title == "unknown extra input key":
                    # COMPAT: the dropped key is reported in the prediction's logs.
                    self.assertEqual(ours["logs"], "WARNING: ignoring unknown input 'extra': the model does not take it\n")
                    self.assert_prediction_like(ours, dict(legacy, logs=ours["logs"]), status)
                elif isinstance(legacy, dict) and "status" in legacy and "input" in legacy:
                    if legacy.get("status") == "failed" and status == 200:
                        # Tracebacks name each server's own files; the lines around them agree.
                        self.assertTrue(ours["logs"].startswith("about to fail\nTraceback (most recent call last):\n"))
                        self.assertTrue(ours["logs"].endswith("ValueError: boom: x\n"), ours["logs"])
                        legacy = dict(legacy, logs=ours["logs"])
                    self.assert_prediction_like(ours, legacy, status)
                elif title == "malformed JSON":
                    entry, legacy_entry = ours["detail"][0], legacy["detail"][0]
                    self.assertEqual({k: entry[k] for k in ("type", "loc", "msg", "input")},
                                     {k: legacy_entry[k] for k in ("type", "loc", "msg", "input")})
                    self.assertIn("error", entry["ctx"])  # the parser's own words differ
                elif title == "constraints: Path input invalid":
                    # Legacy lists pydantic's two internal validators; ours is the one that says why.
                    expected = dict(legacy["detail"][1], loc=["body", "input", "image"])
                    self.assertEqual(ours["detail"], [expected])
                else:
                    self.assertEqual(ours, legacy)
        return replayed

    def test_null_predictor_exchanges(self):
        server = CogServer(source_dir=os.path.join(CORPUS, "legacy_null"))
        try:
            server.wait_for_status("READY")
            self.assertGreaterEqual(self.replay("null predictor", server), 25)
            status, headers, body = server.request("POST", "/shutdown")
            self.assertEqual((status, body), (200, {}))
            self.assertEqual(server.process.wait(30), 0)
        finally:
            server.close()

    def test_raising_predictor_exchanges(self):
        server = CogServer("raise")
        try:
            server.wait_for_status("READY")
            self.assertGreaterEqual(self.replay("raise predictor", server), 3)
        finally:
            server.stop()

    def test_constraints_predictor_exchanges(self):
        server = CogServer(source_dir=os.path.join(CORPUS, "legacy_constraints"))
        try:
            server.wait_for_status("READY")
            self.assertGreaterEqual(self.replay("constraints predictor", server), 17)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
