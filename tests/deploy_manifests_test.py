"""deploy/: every Kubernetes manifest is checked against the API's schemas and
against the server it runs.

* Schemas: the npm package kubernetes-models (scripts/setup.sh installs it):
  its validate() for types and required fields, and TypeScript's excess-property
  check against its interfaces, which rejects unknown (misspelt) fields that
  validate() lets through. Both are shown to reject a broken manifest.
* Kustomize may not be installed: each topology's kustomization.yaml only lists
  resources (files or directories with their own kustomization.yaml), and this
  test renders them the same way.
* The server: every flag a manifest passes to cog-server is in
  `cog-server --helpfull`, every flag passed to the runner in
  `python3 -m cog_runner --help`; every probe's path is a route of the real
  binary (200 or 503, never 404/405); named ports exist; the Service's ports are
  named http and grpc with appProtocol grpc; termination leaves room for the
  preStop, the grace period and the server's own bound past it; the HPA's
  metric is the one the adapter rule makes from series /metrics really has.
* The Dockerfile: the packages of its runtime stage provide every shared
  library the built binary links (apt-cache's dependency closure; no Docker
  engine is needed), and it installs the binary and runner where the binary
  looks for them.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

from server_harness import ROOT, SERVER_BINARY, CogServer, _runfile

DEPLOY = _runfile("deploy")
KUBERNETES = os.path.join(DEPLOY, "kubernetes")
TOPOLOGIES = ("single-container", "sidecar")
CHECKER = _runfile("tests/k8s/check_manifests.js")
RUNNER = _runfile("runner")
# The server bounds its exit past the grace period: a watchdog exits at grace + 30 s.
SERVER_EXIT_BOUND_PAST_GRACE = 30


def render(directory):
    """[(source, object)] of a kustomization that only lists resources."""
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unsupported, "%s: this test renders only `resources`, not %s" % (directory, unsupported)
    out = []
    for resource in kustomization["resources"]:
        target = os.path.normpath(os.path.join(directory, resource))
        if os.path.isdir(target):
            out += render(target)
        else:
            with open(target) as f:
                for document in yaml.safe_load_all(f):
                    if document is not None:
                        out.append((os.path.relpath(target, DEPLOY), document))
    return out


def all_manifests():
    """Every YAML object under deploy/kubernetes except the kustomizations."""
    out = []
    for base, _, files in os.walk(KUBERNETES):
        for name in sorted(files):
            if name.endswith(".yaml") and name != "kustomization.yaml":
                with open(os.path.join(base, name)) as f:
                    for document in yaml.safe_load_all(f):
                        out.append((os.path.relpath(os.path.join(base, name), DEPLOY), document))
    return out


def node_path():
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError("npm is not installed: run scripts/setup.sh")
    return subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=True).stdout.strip()


def check_schemas(items):
    """The checker's report for [(source, object)]."""
    work = tempfile.mkdtemp(prefix="cog-k8s-")
    try:
        objects = os.path.join(work, "objects.json")
        with open(objects, "w") as f:
            json.dump([{"source": s, "object": o} for s, o in items], f)
        env = dict(os.environ, NODE_PATH=node_path())
        done = subprocess.run(["node", CHECKER, objects, work], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise AssertionError("the schema checker failed:\n%s%s" % (done.stdout, done.stderr))
        return json.loads(done.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def containers(obj):
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def is_cog_server(container):
    return container["image"].startswith("cog-server") or container["name"] == "cog-server"


def flag_names(args):
    names = []
    for arg in args:
        if arg.startswith("--"):
            names.append(arg[2:].split("=", 1)[0])
    return names


def help_flags():
    text = subprocess.run([SERVER_BINARY, "--helpfull"], capture_output=True, text=True).stdout
    names = set(re.findall(r"^\s+--([a-z0-9_]+)", text, re.M))
    assert "runner_shutdown_grace_period" in names, text[:2000]
    return names


class RenderedTopologiesTest(unittest.TestCase):
    def test_each_topology_renders_a_deployment_and_the_shared_objects(self):
        for topology in TOPOLOGIES:
            with self.subTest(topology=topology):
                kinds = sorted(o["kind"] for _, o in render(os.path.join(KUBERNETES, topology)))
                self.assertEqual(kinds, ["Deployment", "HorizontalPodAutoscaler",
                                         "PodDisruptionBudget", "Service"])

    def test_every_manifest_passes_the_kubernetes_schemas(self):
        items = all_manifests()
        self.assertGreaterEqual(len(items), 6)
        report = check_schemas(items)
        for entry in report["validate"]:
            self.assertEqual(entry["errors"], [], entry["source"])
        self.assertEqual(report["tsc_status"], 0, report["typecheck"])

    def test_the_schema_check_rejects_an_unknown_field_and_a_wrong_type(self):
        source, deployment = next((s, o) for s, o in all_manifests()
                                  if o["kind"] == "Deployment" and "sidecar" in s)
        misspelt = copy.deepcopy(deployment)
        misspelt["spec"]["template"]["spec"]["initContainers"][0]["restartPolcy"] = "Always"
        report = check_schemas([(source, misspelt)])
        self.assertNotEqual(report["tsc_status"], 0)
        self.assertIn("restartPolcy", report["typecheck"])
        wrong_type = copy.deepcopy(deployment)
        wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "seventy"
        report = check_schemas([(source, wrong_type)])
        self.assertNotEqual(report["validate"][0]["errors"], [])
        self.assertNotEqual(report["tsc_status"], 0)


class ManifestsMatchTheServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deployments = {t: next(o for _, o in render(os.path.join(KUBERNETES, t))
                                   if o["kind"] == "Deployment") for t in TOPOLOGIES}

    def test_every_flag_passed_to_cog_server_exists(self):
        known = help_flags()
        for topology, deployment in self.deployments.items():
            servers = [c for c in containers(deployment) if is_cog_server(c)]
            self.assertEqual(len(servers), 1, topology)
            for name in flag_names(servers[0].get("args", []) + servers[0].get("command", [])):
                with self.subTest(topology=topology, flag=name):
                    self.assertIn(name.replace("-", "_"), known)

    def test_every_flag_passed_to_the_runner_exists(self):
        model = next(c for c in pod_spec(self.deployments["sidecar"])["containers"] if c["name"] == "model")
        command = model["command"]
        self.assertEqual(command[:3], ["python3", "-m", "cog_runner"])
        text = subprocess.run([sys.executable, "-m", "cog_runner", "--help"], capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=RUNNER)).stdout
        for name in flag_names(command):
            self.assertIn("--" + name, text)
        self.assertNotIn("predict", flag_names(command), "the runner reads cog.yaml itself")

    def test_the_sidecar_shares_one_socket_on_an_emptydir(self):
        spec = pod_spec(self.deployments["sidecar"])
        server = spec["initContainers"][0]
        self.assertEqual(server.get("restartPolicy"), "Always")
        self.assertIn("--spawn-runner=false", server["args"])
        socket = next(a.split("=", 1)[1] for a in server["args"] if a.startswith("--runner-socket="))
        model = next(c for c in spec["containers"] if c["name"] == "model")
        self.assertIn("--socket=" + socket, model["command"])
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in (server, model):
            mounts = [m for m in container["volumeMounts"] if socket.startswith(m["mountPath"] + "/")]
            self.assertEqual(len(mounts), 1, container["name"])
            self.assertIn(mounts[0]["name"], empty_dirs)
        # The model container starts once the server's startupProbe passes: it must
        # not wait for setup, which needs the model container.
        self.assertEqual(server["startupProbe"]["httpGet"]["path"], "/v2/health/live")

    def test_the_sidecar_shares_its_files_dir_at_the_same_path(self):
        spec = pod_spec(self.deployments["sidecar"])
        server = spec["initContainers"][0]
        model = next(c for c in spec["containers"] if c["name"] == "model")
        files_dir = next(a.split("=", 1)[1] for a in server["args"] if a.startswith("--files-dir="))
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        mounted = [{m["name"] for m in c["volumeMounts"] if m["mountPath"] == files_dir} for c in (server, model)]
        self.assertEqual(len(mounted[0]), 1, "cog-server mounts a volume at --files-dir")
        self.assertEqual(mounted[0], mounted[1], "the model container mounts the same one at the same path")
        self.assertLessEqual(mounted[0], empty_dirs)

    def test_probes_name_real_routes_and_ports(self):
        paths = set()
        for topology, deployment in self.deployments.items():
            for container in containers(deployment):
                port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
                for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                    probe = container.get(probe_name)
                    if probe is None:
                        continue
                    self.assertIn("httpGet", probe, (topology, container["name"], probe_name))
                    port = probe["httpGet"]["port"]
                    if isinstance(port, str):
                        self.assertIn(port, port_names, (topology, container["name"], probe_name))
                    else:
                        self.assertEqual(port, 5000, "the server's --port in these manifests")
                    paths.add(probe["httpGet"]["path"])
            server = next(c for c in containers(deployment) if is_cog_server(c))
            for kind in ("readinessProbe", "livenessProbe"):
                self.assertIn(kind, server, topology)
        self.assertEqual(paths, {"/v2/health/ready", "/v2/health/live"})
        server = CogServer("echo")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        for path in sorted(paths):
            status, _, body = server.request("GET", path)
            self.assertEqual(status, 200, (path, body))
        for path in sorted(paths):
            self.assertNotEqual(server.request("GET", path + "x")[0], 200, "the check can fail")

    def test_termination_leaves_room_for_prestop_grace_and_the_servers_bound(self):
        for topology, deployment in self.deployments.items():
            spec = pod_spec(deployment)
            server = next(c for c in containers(deployment) if is_cog_server(c))
            grace = next(float(a.split("=", 1)[1]) for a in server["args"]
                         if a.startswith("--runner-shutdown-grace-period="))
            prestop = 0
            for container in containers(deployment):
                hook = container.get("lifecycle", {}).get("preStop")
                if hook is None:
                    continue
                if "sleep" in hook:
                    prestop = max(prestop, hook["sleep"]["seconds"])
                else:  # the sidecar's hook: its delay is its last argument
                    prestop = max(prestop, int(hook["exec"]["command"][-1]))
            self.assertGreater(prestop, 0, topology)
            with self.subTest(topology=topology):
                self.assertGreaterEqual(spec["terminationGracePeriodSeconds"],
                                        prestop + grace + SERVER_EXIT_BOUND_PAST_GRACE)

    def test_service_ports_are_named_and_reach_the_containers(self):
        service = next(o for _, o in all_manifests() if o["kind"] == "Service")
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        self.assertEqual(set(ports), {"http", "grpc"})
        self.assertEqual(ports["grpc"]["appProtocol"], "grpc")
        for topology, deployment in self.deployments.items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            for key, value in service["spec"]["selector"].items():
                self.assertEqual(labels.get(key), value, topology)
            server = next(c for c in containers(deployment) if is_cog_server(c))
            named = {p["name"] for p in server["ports"]}
            for port in ports.values():
                self.assertIn(port["targetPort"], named, topology)

    def test_the_hpa_metric_comes_from_series_the_server_exports(self):
        hpa = next(o for _, o in all_manifests() if o["kind"] == "HorizontalPodAutoscaler")
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        self.assertEqual(kinds, ["Pods", "Resource"], "a per-pod metric with a CPU fallback")
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        rules = yaml.safe_load(next(o for s, o in all_manifests()
                                    if "prometheus-adapter" in s)["data"]["config.yaml"])["rules"]
        rule = next(r for r in rules if r["name"]["as"] == metric)
        series = set(re.findall(r"\b(cog_[a-z_]+)\{", rule["seriesQuery"] + rule["metricsQuery"]))
        self.assertEqual(series, {"cog_predictions_running", "cog_concurrency_max"})
        server = CogServer("echo")
        self.addCleanup(server.close)
        server.wait_for_status("READY")
        _, _, text = server.request("GET", "/metrics")
        exported = set(re.findall(r"^([a-z_]+)(?:\{| )", text, re.M))
        self.assertLessEqual(series, exported)
        annotations = self.deployments["single-container"]["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            self.text = f.read()

    def runtime_packages(self):
        runtime = self.text[self.text.index("AS runtime"):]
        install = re.search(r"apt-get install -y --no-install-recommends\s+\\?\n(.*?)\s*&&", runtime, re.S)
        return set(install.group(1).replace("\\", " ").split())

    @unittest.skipIf(os.environ.get("COG_SANITIZER"),
                     "a sanitizer build links its runtime and every system library shared: "
                     "not the binary the image ships")
    def test_runtime_packages_provide_every_library_the_binary_links(self):
        listed = self.runtime_packages()
        self.assertIn("python3", listed)
        closure = set(subprocess.run(
            ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
             "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *sorted(listed)],
            capture_output=True, text=True, check=True).stdout.split())
        ldd = subprocess.run(["ldd", SERVER_BINARY], capture_output=True, text=True, check=True).stdout
        libraries = re.findall(r"=> (/\S+)", ldd)
        self.assertGreater(len(libraries), 5, ldd)
        missing = []
        for library in libraries:
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(library)], capture_output=True, text=True)
            if owner.returncode != 0:
                owner = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
            package = owner.stdout.split(":")[0]
            if package not in closure:
                missing.append((library, package))
        self.assertEqual(missing, [], "add these packages to the Dockerfile's runtime stage")

    def test_binary_and_runner_go_where_the_binary_looks(self):
        self.assertIn("/out/usr/local/bin/cog-server", self.text)
        self.assertIn("/out/usr/local/share/cog-server/runner", self.text)
        with open(_runfile("server/main.cc")) as f:
            self.assertIn('"../share/cog-server/runner"', f.read())
        self.assertIn("setup.sh --build-only", self.text)
        self.assertNotRegex(self.text, r"\b(curl|wget|pip)\b", "nothing fetched outside Debian")


if __name__ == "__main__":
    unittest.main()
