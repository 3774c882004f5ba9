"""The Kubernetes native-sidecar topology with two processes that share only a
socket directory (the pod's emptyDir): the model container's runner, started as
`python3 -m cog_runner --socket PATH` reading cog.yaml itself, and cog-server
with --spawn-runner=false and no model files of its own.

Either may start first; a runner that is killed and started again is taken
back (more of that in e2e_fault_test.SidecarRestartTest); a server that is
killed leaves its socket behind, the model container's next runner waits on
it, and the next server takes that runner.
"""

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from server_harness import PREDICTORS, CogServer, _runfile, wait_until

RUNNER = _runfile("runner")
PYTHON = os.environ.get("COG_TEST_PYTHON", "python3")


class Runner:
    """The model container: its own copy of the model, the runner package on
    PYTHONPATH, started with --socket only (no --predict: it reads cog.yaml)."""

    def __init__(self, model_dir: str, socket_path: str, log_path: str, tmpdir: str = ""):
        self.log_path = log_path
        env = dict(os.environ, PYTHONPATH=RUNNER, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        if tmpdir:
            env["TMPDIR"] = tmpdir  # the model container's own /tmp
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "cog_runner", "--socket", socket_path, "--working-directory", model_dir],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=model_dir)

    def logs(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()


class SidecarTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cog-pod-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.socket_dir = os.path.join(self.tmp, "sock")  # the shared emptyDir
        os.makedirs(self.socket_dir)
        self.socket = os.path.join(self.socket_dir, "runner.sock")
        self.model = os.path.join(self.tmp, "model")  # only the model container has it
        shutil.copytree(os.path.join(PREDICTORS, "faults"), self.model)
        # cog-server's working directory: empty, as in its own container.
        self.server_dir = os.path.join(self.tmp, "server")
        os.makedirs(self.server_dir)
        self.runner_log = os.path.join(self.tmp, "runner.log")

    def start_server(self) -> CogServer:
        server = CogServer(files={}, args=["--spawn-runner=false", "--runner-socket", self.socket])
        self.addCleanup(server.close)
        return server

    def start_runner(self) -> Runner:
        runner = Runner(self.model, self.socket, self.runner_log)
        self.addCleanup(runner.close)
        return runner

    def predict(self, server: CogServer):
        status, _, answer = server.request("POST", "/predictions", {"input": {"fault": "none"}})
        self.assertEqual((status, answer["status"], answer["output"]), (200, "succeeded", "ok"), answer)
        return answer

    def test_server_first_without_cog_yaml_then_runner(self):
        server = self.start_server()
        self.assertIn("the runner started elsewhere reads its own", server.logs())
        self.assertEqual(server.health()["status"], "STARTING")
        self.assertEqual(server.request("GET", "/v2/health/live")[0], 200, "alive while it waits")
        self.assertEqual(server.request("GET", "/v2/health/ready")[0], 503, "not ready without a runner")
        runner = self.start_runner()
        health = server.wait_for_status("READY")
        self.assertEqual(health["setup"]["logs"], "setup in pid %d\n" % runner.process.pid)
        self.predict(server)
        self.assertEqual(server.stop(), 0)
        self.assertEqual(runner.process.wait(60), 0, "told to shut down by the server")

    def test_runner_first_waits_for_the_socket(self):
        runner = self.start_runner()
        wait_until(lambda: "waiting for cog-server" in runner.logs(), what="the runner to wait")
        self.assertIsNone(runner.process.poll(), "it waits, it does not exit")
        self.assertFalse(os.path.exists(self.socket))
        server = self.start_server()
        server.wait_for_status("READY")
        self.predict(server)

    def test_runner_restarted_is_taken_back(self):
        server = self.start_server()
        first = self.start_runner()
        server.wait_for_status("READY")
        first.process.send_signal(signal.SIGKILL)  # the model container is restarted
        first.process.wait(60)
        wait_until(lambda: server.health()["status"] == "STARTING", what="STARTING without a runner")
        second = self.start_runner()
        health = server.wait_for_status("READY")
        self.assertEqual(health["setup"]["logs"], "setup in pid %d\n" % second.process.pid)
        self.predict(server)

    def test_server_restarted_while_the_runner_waits(self):
        first_server = self.start_server()
        first_runner = self.start_runner()
        first_server.wait_for_status("READY")
        first_server.process.send_signal(signal.SIGKILL)  # the sidecar crashes
        first_server.process.wait(60)
        # Its runner loses the connection and ends; its container starts it again.
        self.assertEqual(first_runner.process.wait(60), 0)
        self.assertTrue(os.path.exists(self.socket), "a killed server leaves its socket behind")
        second_runner = self.start_runner()
        wait_until(lambda: second_runner.logs().count("waiting for cog-server") == 1,
                   what="the new runner to wait on the stale socket")
        self.assertIsNone(second_runner.process.poll())
        # The sidecar is restarted: it takes the waiting runner.
        second_server = self.start_server()
        health = second_server.wait_for_status("READY")
        self.assertEqual(health["setup"]["logs"], "setup in pid %d\n" % second_runner.process.pid)
        self.predict(second_server)
        self.assertEqual(second_server.stop(), 0)
        self.assertEqual(second_runner.process.wait(60), 0)


class SidecarFilesTest(unittest.TestCase):
    """Path inputs and outputs across the pod's shared files volume
    (cog-server --files-dir): the server downloads inputs there, the runner
    copies what the model writes in its own /tmp there, and the server reads
    Path outputs from nowhere else."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cog-pod-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.socket = os.path.join(self.tmp, "sock", "runner.sock")
        self.files = os.path.join(self.tmp, "files")  # the shared emptyDir for files
        self.model_tmp = os.path.join(self.tmp, "model-tmp")  # the model container's /tmp
        for d in (os.path.dirname(self.socket), self.files, self.model_tmp):
            os.makedirs(d)
        self.model = os.path.join(self.tmp, "model")
        shutil.copytree(os.path.join(PREDICTORS, "sidecar_files"), self.model)
        self.server = CogServer(files={}, args=["--spawn-runner=false", "--runner-socket", self.socket,
                                                "--files-dir", self.files])
        self.addCleanup(self.server.close)
        [self.root] = [os.path.join(self.files, d) for d in os.listdir(self.files)]

    def start_runner(self) -> Runner:
        runner = Runner(self.model, self.socket, os.path.join(self.tmp, "runner.log"), self.model_tmp)
        self.addCleanup(runner.close)
        return runner

    def test_files_cross_the_shared_volume_and_nothing_is_left(self):
        self.start_runner()
        self.assertEqual(self.server.wait_for_status("READY")["setup"]["logs"], "")
        status, _, answer = self.server.request("POST", "/predictions", {"input": {
            "text": "made in the model's /tmp", "image": "data:text/plain;base64,aW4gdGhlIHNoYXJlZCBkaXI="}})
        self.assertEqual((status, answer["status"]), (200, "succeeded"), answer)
        decoded = [base64.b64decode(uri.split(",", 1)[1]).decode() for uri in answer["output"]]
        self.assertEqual(decoded, ["in the shared dir", "made in the model's /tmp", "made in the model's /tmp"])
        self.assertIn("input at %s/p" % self.root, answer["logs"], "the input was downloaded to the volume")
        # The prediction's directory (its input, the runner's copy) goes with it;
        # the model's own file stays in its /tmp.
        wait_until(lambda: os.listdir(self.root) == [], what="the prediction's files to be removed")
        [made] = os.listdir(self.model_tmp)
        self.assertEqual(os.listdir(os.path.join(self.model_tmp, made)), ["out.txt"])

    def test_a_directory_fails_its_prediction_saying_so(self):
        self.start_runner()
        self.server.wait_for_status("READY")
        status, _, answer = self.server.request("POST", "/predictions", {"input": {"kind": "directory"}})
        self.assertEqual((status, answer["status"]), (200, "failed"), answer)
        self.assertRegex(answer["error"], r"^the output file /\S+ is a directory: return the Path of a file$")
        self.assertEqual(self.server.health()["status"], "READY")

    def test_a_runner_that_cannot_see_the_volume_says_so_in_setup_logs(self):
        os.rename(self.files, self.files + "-elsewhere")  # not mounted in the model container
        self.addCleanup(os.rename, self.files + "-elsewhere", self.files)
        self.start_runner()
        logs = self.server.wait_for_status("READY")["setup"]["logs"]
        self.assertIn("cog-server keeps prediction files in %s, which this container does not have" % self.root,
                      logs)
        self.assertIn("mount the volume of cog-server's --files-dir at the same path in both containers", logs)
        status, _, answer = self.server.request("POST", "/predictions", {"input": {"text": "x"}})
        self.assertEqual(answer["status"], "failed", answer)
        self.assertIn("cannot copy the output file", answer["error"])
        self.assertIn("--files-dir", answer["error"])


if __name__ == "__main__":
    unittest.main()
