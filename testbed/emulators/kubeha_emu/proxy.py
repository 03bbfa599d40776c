"""kube-proxy emulator: reads its KubeProxyConfiguration (--config), loads the kubeconfig named by
clientConnection.kubeconfig once, polls its Node every 2 s, serves /healthz on :10256."""

import os
import socket
import sys
import threading
import time

import yaml

from . import client as kclient
from . import common, flags, serving

POLL = 2.0


def run(argv):
    values, ignored = flags.parse(argv, {"config": None, "hostname-override": None,
                                         "kubeconfig": None, "master": None})
    reporter = common.Reporter("kube-proxy")
    reporter.event("start", None, "pid %d, flags ignored: %s" % (os.getpid(), " ".join(ignored) or "none"),
                   force=True)
    config = {}
    if values["config"]:
        try:
            with open(values["config"], encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            reporter.event("error", None, "config %s: %s" % (values["config"], exc), force=True)
            return 1
    node = values["hostname-override"] or config.get("hostnameOverride") or socket.gethostname()
    kubeconfig = (config.get("clientConnection") or {}).get("kubeconfig") or values["kubeconfig"]
    if not kubeconfig:
        reporter.event("error", None, "no clientConnection.kubeconfig in %s" % values["config"], force=True)
        return 1
    try:
        api = kclient.Client(kubeconfig, reporter=reporter, user_agent="kube-proxy")
    except (kclient.KubeconfigError, OSError, ValueError) as exc:
        reporter.event("error", None, "kubeconfig %s: %s" % (kubeconfig, exc), force=True)
        return 1
    reporter.update(server=api.server, node=node, kubeconfig=kubeconfig)
    health = config.get("healthzBindAddress") or "0.0.0.0:10256"
    host, _, port = health.rpartition(":")
    stop = threading.Event()
    serving.install_sigterm(stop)
    server = serving.serve(host or "0.0.0.0", port or 10256, {"/healthz": api.healthy, "/livez": api.healthy},
                           fail_code=503)
    while not stop.is_set():
        started = time.monotonic()
        try:
            answer = api.get("/api/v1/nodes/" + node)
            if answer.status == 404:
                reporter.event("error", api.server, "node %s not found" % node)
        except OSError:
            pass
        reporter.update()
        stop.wait(max(0.1, POLL - (time.monotonic() - started)))
    server.shutdown()
    reporter.event("stop", api.server, "exit 0", force=True)
    return 0


def main():
    sys.exit(run(sys.argv[1:]))
