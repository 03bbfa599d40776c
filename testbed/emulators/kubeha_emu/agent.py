"""Emulated in-cluster programs (node agents, the Cilium operator) that reach the API the way
client-go's rest.InClusterConfig makes them: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
the bearer token file and CA of the pod's service account
(/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}). Three modes:

- cilium-agent (`cilium-agent --config-dir=... [--agent-health-port=9879]`): at start it waits for
  the API as the agent's k8s client does (a try every 5 s, giving up after 1 min: exit 1, the
  kubelet restarts it). Then every 2 s it renews its Lease kube-system/cilium-agent-<node>, and
  serves /healthz on 127.0.0.1:<agent-health-port> (the chart's probes), 200 only while its last
  API call succeeded within the last 30 s. The real agent writes its CiliumNode and watches many
  resources; CRDs are not served by the emulated apiserver, and a Lease is the API's own "I am
  alive" record, whose renewTime shows the agent's reach to the API to anyone reading it.
- promtail (`promtail -config.file=... -server.http-listen-port=3101`): a log shipper whose
  Kubernetes discovery lists the pods of its node (env HOSTNAME) every 2 s; /ready on
  0.0.0.0:<port> with the same 30 s rule.
- cilium-operator (`cilium-operator-generic --config-dir=... [--operator-api-serve-addr=HOST:PORT]`,
  the Deployment's pods): after the same start-up wait, client-go leader election on Lease
  <CILIUM_K8S_NAMESPACE, else default>/cilium-operator-resource-lock with identity
  `<hostname>-<10 random characters>` (operator/cmd/root.go; 15 s lease, 10 s renew deadline, 2 s
  retry: the operator's defaults); a leader that cannot renew within the deadline exits 1 ("Leader
  election lost"), as the real one shuts down. /healthz on --operator-api-serve-addr (default
  localhost:9234, what the chart's probes ask for): 200 "ok" when a GET /version (discovery's
  ServerVersion, operator/api/health.go checkStatus) succeeds at the time of the request, else 500
  with the error, leader or not.

Without KUBERNETES_SERVICE_HOST/PORT each refuses to start with client-go's ErrNotInCluster message:
a real kubelet injects them from the `kubernetes` Service's ClusterIP, which this test bed has not
got (no Services, no kube-proxy rules); the Cilium chart with k8sServiceHost sets them itself.
Log and status: /var/log/kubeha/<mode>.log and /run/kubeha/<mode>.json (common.Reporter)."""

import os
import random
import socket
import string
import ssl
import sys
import threading
import time

from . import client as kclient
from . import common, leader, serving

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NOT_IN_CLUSTER = ("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                  "KUBERNETES_SERVICE_PORT must be defined")
POLL = 2.0
# a successful API call within this many seconds makes /healthz 200 (tests shorten it)
HEALTH_WINDOW = float(os.environ.get("KUBEHA_EMU_AGENT_HEALTH_WINDOW", "30"))
STARTUP_RETRY, STARTUP_TIMEOUT = 5.0, 60.0


class InClusterConfig:
    """rest.InClusterConfig (k8s.io/client-go/rest/config.go) in the shape client.Client takes."""

    def __init__(self, environ=None, reporter=None):
        environ = os.environ if environ is None else environ
        host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise kclient.KubeconfigError(NOT_IN_CLUSTER)
        # the pod's service-account volume (the kubelet says where, see daemonpod.TemplatePod)
        sa_dir = environ.get("KUBEHA_EMU_SERVICEACCOUNT_DIR") or SA_DIR
        self.path = sa_dir
        self.token_file = os.path.join(sa_dir, "token")
        with open(self.token_file, encoding="utf-8") as handle:   # read now: an error stops the start
            handle.read()
        self.server = "https://" + ("[%s]" % host if ":" in host else host) + ":" + port
        self.ca_file = os.path.join(sa_dir, "ca.crt")
        self.ca_data = self.cert_file = self.key_file = self.cert_data = self.key_data = self.token = None
        self.ca_error = None
        try:
            ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            # client-go logs it and goes on with the system roots
            self.ca_error = "Expected to load root CA config from %s, but got err: %s" % (self.ca_file, exc)
            self.ca_file = None

    def ssl_context(self):
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        context.check_hostname = True
        return context


def _flag(argv, name, default=None):
    for i, arg in enumerate(argv):
        for prefix in ("--" + name, "-" + name):
            if arg == prefix and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(prefix + "="):
                return arg.split("=", 1)[1]
    return default


def run(mode, argv, environ=None):
    environ = os.environ if environ is None else environ
    reporter = common.Reporter(mode)
    node = environ.get("K8S_NODE_NAME") or environ.get("HOSTNAME") or socket.gethostname()
    reporter.event("start", None, "pid %d, node %s, args %s" % (os.getpid(), node, " ".join(argv)), force=True)
    try:
        config = InClusterConfig(environ)
    except (kclient.KubeconfigError, OSError) as exc:
        reporter.event("error", None, "in-cluster config: %s" % exc, force=True)
        reporter.update(node=node, last_error=str(exc))
        print("%s: %s" % (mode, exc), file=sys.stderr, flush=True)
        return 1
    if config.ca_error:
        reporter.event("error", config.server, config.ca_error, force=True)
    api = kclient.Client(config, reporter=reporter, user_agent="%s/%s" % (mode, node))
    reporter.update(server=api.server, node=node, mode=mode)
    elector = None
    if mode == "cilium-agent":
        work = _lease_renewer(api, node)
        health = ("127.0.0.1", int(_flag(argv, "agent-health-port", 9879)), "/healthz")
    elif mode == "cilium-operator":
        namespace = environ.get("CILIUM_K8S_NAMESPACE") or "default"
        identity = socket.gethostname() + "-" + "".join(random.choice(string.ascii_letters) for _ in range(10))
        elector = leader.LeaderElector(api, namespace, OPERATOR_LOCK, ident=identity, reporter=reporter)
        reporter.update(leader=False, identity=identity)
        work = elector.try_acquire_or_renew
        host, _, port = _flag(argv, "operator-api-serve-addr", "localhost:9234").rpartition(":")
        health = ("127.0.0.1" if host in ("", "localhost") else host.strip("[]"), int(port), "/healthz")
    else:
        work = _pod_lister(api, node)
        health = ("0.0.0.0", int(_flag(argv, "server.http-listen-port", 3101)), "/ready")
    stop = threading.Event()
    serving.install_sigterm(stop)
    # the agent's k8s client blocks its start until the API answers (every 5 s, up to 1 min)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not stop.is_set():
        try:
            if api.get("/version").status == 200:
                break
        except OSError:
            pass
        if time.monotonic() >= deadline:
            reporter.event("error", api.server, "Unable to contact k8s api-server: %s" % api.last_error, force=True)
            return 1
        stop.wait(STARTUP_RETRY)
    reporter.event("connect", api.server, "k8s client connected (in-cluster config, token %s)" % config.token_file,
                   force=True)
    if mode == "cilium-operator":
        check, fail_code = (lambda: _server_version(api)), 500
    else:
        check, fail_code = (lambda: api.healthy(HEALTH_WINDOW)), 503
    server = serving.serve(health[0], health[1], {health[2]: check}, fail_code=fail_code)
    while not stop.is_set():
        started = time.monotonic()
        try:
            work()
        except OSError:
            pass
        if elector is not None:
            if elector.lost():
                reporter.event("leader", api.server, "Leader election lost", force=True)
                server.shutdown()
                return 1
            reporter.update(leader=elector.leading, identity=elector.identity)
        reporter.update()
        stop.wait(max(0.1, POLL - (time.monotonic() - started)))
    server.shutdown()
    reporter.event("stop", api.server, "exit 0", force=True)
    return 0


OPERATOR_LOCK = "cilium-operator-resource-lock"


def _server_version(api):
    """The operator's /healthz check: the API's /version answers now."""
    try:
        answer = api.get("/version")
    except OSError as exc:
        return False, str(exc)
    return (True, "ok") if answer.status == 200 else (False, "GET /version: HTTP %d" % answer.status)


def _lease_renewer(api, node):
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-agent-" + node

    def renew():
        spec = {"holderIdentity": node, "leaseDurationSeconds": 30, "renewTime": leader.micro_time()}
        answer = api.get(path)
        if answer.status == 200 and isinstance(answer.json, dict):
            answer.json["spec"] = dict(answer.json.get("spec") or {}, **spec)
            api.put(path, answer.json)
        elif answer.status == 404:
            api.put(path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "cilium-agent-" + node, "namespace": "kube-system"}, "spec": spec})
    return renew


def _pod_lister(api, node):
    def discover():
        api.get("/api/v1/pods?fieldSelector=spec.nodeName=" + node)
    return discover


def main(mode):
    sys.exit(run(mode, sys.argv[1:]))
