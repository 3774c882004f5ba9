"""Process hygiene through the real binary: nothing the predictor starts
outlives the server (a child in the runner's group, a setsid() child, an
orphaned daemon), also after `kill -9` of the server; nothing a runner started
outlives that runner when it is killed and replaced; the directories a
killed server left in $TMPDIR are removed by the next one; a busy gRPC or REST
port is a clear error and a non-zero exit."""

import os
import signal
import subprocess
import time
import unittest

from server_harness import PREDICTORS, SERVER_BINARY, CogServer, process_alive, wait_until


def children(pid: int):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(p) for p in f.read().split()]


def parent_of(pid: int) -> int:
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def exists(pid: int) -> bool:
    """Whether /proc still has `pid`, a zombie included."""
    return os.path.exists("/proc/%d" % pid)


class ProcessTreeTest(unittest.TestCase):
    def start(self, **kwargs):
        server = CogServer("spawner", **kwargs)
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        return server

    def spawn(self, server):
        """Runs the predictor that starts processes; returns every pid of the
        runner's tree: the guardian, the runner, and what the predictor started."""
        guardians = server.runner_pids()
        self.assertEqual(len(guardians), 1, guardians)
        runner = children(guardians[0])
        status, _, answer = server.request("POST", "/predictions", {"input": {}})
        self.assertEqual((status, answer["status"]), (200, "succeeded"), answer)
        started = answer["output"]
        self.assertEqual(len(started), 3)
        tree = guardians + runner + started
        self.assertTrue(all(process_alive(pid) for pid in tree), tree)
        return guardians[0], started

    def test_kill_9_of_the_server_leaves_no_process_and_the_next_server_cleans_up(self):
        server = self.start()
        guardian, (same_group, own_session, daemon) = self.spawn(server)
        tree = [guardian] + children(guardian) + [same_group, own_session, daemon]
        self.assertEqual(parent_of(daemon), guardian, "the orphaned daemon came to the guardian")
        left = server.temp_entries()
        self.assertTrue(any(e.startswith("cog-runner-%d-" % server.process.pid) for e in left), left)

        killed = time.monotonic()
        server.process.kill()
        server.process.wait()
        wait_until(lambda: not any(process_alive(pid) for pid in tree), timeout=10,
                   what="the runner's tree to die with the server")
        print("kill -9 of the server: the runner's tree (%d processes, a setsid() child and an "
              "orphaned daemon among them) was dead %.3f s later" % (len(tree), time.monotonic() - killed))
        self.assertEqual(server.temp_entries(), left, "a killed server cleans nothing")

        # The next server on the same TMPDIR removes what the dead one left.
        following = CogServer("spawner", env={"TMPDIR": server.tmpdir})
        self.addCleanup(following.close)
        following.wait_for_status("READY")
        now = following.temp_entries()
        self.assertFalse(any(e in now for e in left), (left, now))
        self.assertIn("left by a server that is gone", following.logs())
        self.assertEqual(following.stop(), 0)

    def test_sigterm_leaves_no_process(self):
        server = self.start()
        guardian, started = self.spawn(server)
        tree = [guardian] + children(guardian) + started
        self.assertEqual(server.stop(), 0)
        self.assertEqual([pid for pid in tree if process_alive(pid)], [])
        self.assertEqual(server.left_in_tmpdir, [])

    def test_what_a_killed_runner_left_outside_its_group_goes_with_it(self):
        server = self.start()
        guardian, (same_group, own_session, daemon) = self.spawn(server)
        # Killing the guardian from outside: the runner dies with it, its group
        # is killed, and what left the group (a setsid() child, a daemon) comes
        # to the server, a subreaper, which kills and reaps it before the
        # runner that replaces this one starts: the server runs on without it.
        os.kill(guardian, signal.SIGKILL)
        wait_until(lambda: not process_alive(same_group), what="the runner's group to be killed")
        for pid in (own_session, daemon):
            wait_until(lambda: not exists(pid), timeout=20, what="%d to be killed and reaped" % pid)
        server.wait_for_status("READY")
        self.assertIn("killed 2 process(es) the runner left behind", server.logs())
        # The new runner serves, and what it starts goes at exit as before.
        _, started = self.spawn(server)
        self.assertEqual(server.stop(), 0)
        self.assertEqual([pid for pid in started if process_alive(pid)], [])

    def test_a_runner_replaced_for_a_cancel_it_ignored_leaves_nothing_behind(self):
        # The runner is replaced after --cancel-timeout; its setsid() helper
        # went on running in the server's tree until the server exited.
        server = CogServer(files={
            "cog.yaml": 'predict: "predict.py:Predictor"\n',
            "predict.py": (
                "import signal, subprocess, time\n"
                "from cog import BasePredictor\n\n\n"
                "class Predictor(BasePredictor):\n"
                "    def predict(self) -> str:\n"
                "        helper = subprocess.Popen(['sleep', '3600'], start_new_session=True)\n"
                "        print('helper', helper.pid, flush=True)\n"
                "        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})  # deaf to its cancel\n"
                "        time.sleep(3600)\n"
                "        return 'woke up'\n")},
            args=["--cancel-timeout", "1"])
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        for round in range(2):
            status, _, body = server.request("POST", "/predictions", {"id": "deaf-%d" % round, "input": {}},
                                             headers={"Prefer": "respond-async"})
            self.assertEqual(status, 202, body)
            logs = wait_until(lambda: server.request("GET", "/predictions/deaf-%d" % round)[2].get("logs") or None,
                              what="the helper's pid")
            helper = int(logs.split()[1])
            self.assertTrue(process_alive(helper))
            self.assertEqual(server.request("POST", "/predictions/deaf-%d/cancel" % round)[0], 200)
            wait_until(lambda: not exists(helper), timeout=30, what="the helper to go with its runner")
            server.wait_for_status("READY", timeout=60)
        self.assertEqual(server.stop(), 0)


class BusyPortTest(unittest.TestCase):
    def second_server(self, port_args):
        """Starts a server whose port is taken; returns (exit code, its output)."""
        process = subprocess.Popen(
            [SERVER_BINARY, "--working-directory", os.path.join(PREDICTORS, "sleeper"),
             "--host", "127.0.0.1", *port_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return process.returncode, output.decode(errors="replace")

    def test_a_busy_grpc_port_is_an_error(self):
        first = CogServer("sleeper")
        self.addCleanup(first.close)
        code, output = self.second_server(["--port", "0", "--grpc-port", str(first.grpc_port)])
        self.assertNotEqual(code, 0, output)
        self.assertIn("cannot listen for gRPC on 127.0.0.1:%d" % first.grpc_port, output)
        self.assertIsNone(first.process.poll())
        self.assertEqual(first.stop(), 0)

    def test_a_busy_rest_port_is_an_error(self):
        first = CogServer("sleeper")
        self.addCleanup(first.close)
        code, output = self.second_server(["--port", str(first.http_port), "--grpc-port", "0"])
        self.assertNotEqual(code, 0, output)
        self.assertIn(str(first.http_port), output)
        self.assertIsNone(first.process.poll())
        self.assertEqual(first.stop(), 0)


if __name__ == "__main__":
    unittest.main()
