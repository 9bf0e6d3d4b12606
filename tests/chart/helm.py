"""Helm for tests/chart.rs, through helm-sdkpy (Helm's Go library): lint a chart, or render it.

    helm.py lint CHART...
        Prints, for each chart, {"linted", "messages": [{"severity": 1..3 (info, warning,
        error), "path", "error"}]}: Helm's lint, which renders every
        template with the chart's own values and reports template and YAML errors (severity 3)
        with the failing path, and problems such as deprecated APIs as warnings (severity 2).
        The error texts of most messages come back empty (helm-sdkpy serialises Go error values
        as JSON objects, and most have no exported fields).

    helm.py render CHART < CASES
        CASES is a JSON list of {"name", "release", "namespace", "values"}; prints a JSON list
        of {"name", "manifest", "notes"} or {"name", "error"}. helm-sdkpy has no `helm template`, so this
        runs a real `helm install` (no wait) against a fake API server in this process that
        answers discovery, has no existing objects, and accepts every write: the manifest Helm
        returns is the chart rendered with those values. Template failures (`fail`, `required`)
        come back as the error.

Helm's caches and configuration go to a temporary folder, never to the user's home.
"""

import asyncio
import http.server
import json
import os
import sys
import tempfile
import threading

_HOME = tempfile.TemporaryDirectory(prefix="rollout-guard-helm-")
for var, sub in [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                 ("HELM_DATA_HOME", "data")]:
    os.environ[var] = os.path.join(_HOME.name, sub)
os.environ.pop("KUBECONFIG", None)

import helm_sdkpy  # noqa: E402  (after the environment above)

def lint(chart):
    config = helm_sdkpy.Configuration()
    result = asyncio.run(helm_sdkpy.Lint(config).run(chart))
    messages = []
    for m in result.get("Messages") or []:
        err = m.get("Err")
        messages.append({
            "severity": m.get("Severity"),
            "path": m.get("Path"),
            "error": json.dumps(err) if err else "",
        })
    return {"linted": result.get("TotalChartsLinted"), "messages": messages}


# The API groups the chart's resources live in: (group, version) -> [(plural, kind, namespaced)].
_RESOURCES = {
    ("", "v1"): [("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
                 ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True),
                 ("namespaces", "Namespace", False)],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("rbac.authorization.k8s.io", "v1"): [
        ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("networking.k8s.io", "v1"): [("networkpolicies", "NetworkPolicy", True)],
    ("monitoring.coreos.com", "v1"): [
        ("servicemonitors", "ServiceMonitor", True),
        ("prometheusrules", "PrometheusRule", True),
    ],
}


def _resource_list(group, version):
    return {
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [
            {"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            for plural, kind, namespaced in _RESOURCES[(group, version)]
        ],
    }


class _FakeApi(http.server.BaseHTTPRequestHandler):
    """Discovery, nothing stored, every write accepted. Helm stores its release record as a
    protobuf Secret; that body is not parsed, and a minimal JSON Secret is answered."""

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self):
        self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": "NotFound", "code": 404, "message": "not found"})

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        parts = path.strip("/").split("/")
        if path == "/version":
            return self._reply(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                     "platform": "linux/amd64"})
        if path == "/api":
            return self._reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                     "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                      for (g, v) in _RESOURCES if g]
            return self._reply(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                     "groups": groups})
        if path == "/api/v1":
            return self._reply(200, _resource_list("", "v1"))
        if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in _RESOURCES:
            return self._reply(200, _resource_list(parts[1], parts[2]))
        if parts[-1] == "secrets":  # Helm's release history: none
            return self._reply(200, {"kind": "SecretList", "apiVersion": "v1", "items": [],
                                     "metadata": {}})
        return self._not_found()

    def _write(self, code):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return self._reply(code, json.loads(body))
        return self._reply(code, {"kind": "Secret", "apiVersion": "v1",
                                  "metadata": {"name": "release", "resourceVersion": "1"}})

    def do_POST(self):
        self._write(201)

    def do_PUT(self):
        self._write(200)

    def do_PATCH(self):
        self._write(200)

    def log_message(self, *args):
        pass


def render(chart, cases):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = os.path.join(_HOME.name, "kubeconfig")
    with open(kubeconfig, "w") as f:
        json.dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {
                "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
        }, f)
    out = []
    try:
        for case in cases:
            config = helm_sdkpy.Configuration(namespace=case["namespace"], kubeconfig=kubeconfig)
            install = helm_sdkpy.Install(config)
            try:
                release = asyncio.run(install.run(case["release"], chart,
                                                  values=case.get("values") or None,
                                                  wait=False, timeout=60))
                out.append({"name": case["name"], "manifest": release["manifest"],
                            "notes": release.get("info", {}).get("notes", "")})
            except helm_sdkpy.HelmError as e:
                out.append({"name": case["name"], "error": str(e)})
    finally:
        server.shutdown()
    return out


def main(argv):
    if len(argv) >= 3 and argv[1] == "lint":
        result = [lint(chart) for chart in argv[2:]]
    elif len(argv) == 3 and argv[1] == "render":
        result = render(argv[2], json.load(sys.stdin))
    else:
        sys.stderr.write(__doc__)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
