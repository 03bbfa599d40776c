"""Shared main of the kube-controller-manager and kube-scheduler emulators: kubeconfig loaded once
at start, leader election on their Lease, HTTPS /healthz with a self-signed certificate."""

import os
import sys
import threading
import time

from . import client as kclient
from . import common, flags, leader, serving

KNOWN = {
    "kubeconfig": None,
    "authentication-kubeconfig": None,
    "authorization-kubeconfig": None,
    "bind-address": "0.0.0.0",
    "secure-port": None,
    "leader-elect": True,
    "leader-elect-lease-duration": "15s",
    "leader-elect-renew-deadline": "10s",
    "leader-elect-retry-period": "2s",
}


def _seconds(text):
    text = str(text)
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    if text.endswith("m"):
        return float(text[:-1]) * 60
    return float(text)


def run(component, default_port, argv, work=None, known=None):
    """Run a control-plane component until SIGTERM. `work(client, reporter, values)` runs every
    retry period while leading (the controller-manager's controllers); `known` adds the
    component's own flags (with their defaults) to the common ones, `values` has them all."""
    values, ignored = flags.parse(argv, dict(KNOWN, **{"secure-port": str(default_port)}, **(known or {})),
                                  booleans=("leader-elect",))
    reporter = common.Reporter(component)
    reporter.event("start", None, "pid %d, flags ignored: %s" % (os.getpid(), " ".join(ignored) or "none"),
                   force=True)
    if not values["kubeconfig"]:
        reporter.event("error", None, "--kubeconfig is required", force=True)
        return 1
    try:
        api = kclient.Client(values["kubeconfig"], reporter=reporter, user_agent=component)
    except (kclient.KubeconfigError, OSError, ValueError) as exc:
        reporter.event("error", None, "kubeconfig: %s" % exc, force=True)
        return 1
    reporter.update(server=api.server)
    stop = threading.Event()
    serving.install_sigterm(stop)
    server = serving.serve(values["bind-address"], values["secure-port"],
                           {"/healthz": api.healthy, "/livez": api.healthy, "/readyz": api.healthy},
                           fail_code=500, tls_context=serving.self_signed_context())
    reporter.event("serve", None, "https://%s:%s/healthz" % (values["bind-address"], values["secure-port"]),
                   force=True)
    retry = _seconds(values["leader-elect-retry-period"])
    elector = None
    if values["leader-elect"]:
        elector = leader.LeaderElector(
            api, "kube-system", component, reporter=reporter,
            lease_duration=int(_seconds(values["leader-elect-lease-duration"])),
            renew_deadline=_seconds(values["leader-elect-renew-deadline"]))
    code = 0
    while not stop.is_set():
        started = time.monotonic()
        if elector is not None:
            elector.try_acquire_or_renew()
            if elector.lost():
                reporter.event("leader", api.server, "leaderelection lost", force=True)
                code = 1
                break
            leading = elector.leading
        else:
            try:
                api.get("/api/v1/namespaces/kube-system")
            except OSError:
                pass
            leading = True
        reporter.update(leader=leading, identity=elector.identity if elector else None)
        if leading and work is not None:
            try:
                work(api, reporter, values)
            except OSError:
                pass
        stop.wait(max(0.1, retry - (time.monotonic() - started)))
    server.shutdown()
    reporter.event("stop", api.server, "exit %d" % code, force=True)
    return code


def seconds(text):
    """A Go duration flag value as kubespray writes them (`40s`, `5m`, `500ms`) in seconds."""
    return _seconds(text)


def script_main(component, default_port, work=None, known=None):
    sys.exit(run(component, default_port, sys.argv[1:], work, known))
