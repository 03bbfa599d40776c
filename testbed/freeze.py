#!/usr/bin/env python3
"""Whole-host loss on the running test bed: freeze one master entirely (`docker pause`: its
apiserver, etcd member, controller-manager, scheduler, kubelet, kube-proxy and DaemonSet pods stop at once, and
its TCP peers get no reset: a black hole, as when a host dies) for --seconds, watch the cluster
from the load balancer's host through the endpoint, then thaw it and wait until the bed is healthy.

    testbed/freeze.py LAYOUT [--node kubeha-master1] [--seconds 120] [--expect survive|break]
                             [--server-name kubernetes]

What is watched, every ~2 s (real kubectl on kubeha-lb, through the VIP 172.30.0.10:6443, with
the admin credentials of another master, --request-timeout=10s; the kube-proxy status files of
the workers and the Cilium agents' status files of every other node):
  api        every kubectl call through the VIP succeeds, except in the first seconds while
             HAProxy has not yet marked the frozen backend DOWN (2 failed 1-s checks): a call
             that starts later than --grace-api seconds into the freeze must not fail
  leases     every other node's Lease (kube-node-lease) is renewed: no gap as long as its
             leaseDurationSeconds (40) between two renewals seen
  ready      every other node stays Ready (the emulated node lifecycle controller marks a node
             Unknown after --node-monitor-grace-period without news, as the real one does); the
             frozen node is marked Unknown during the freeze (the controller does see the loss)
  leaders    kube-controller-manager and kube-scheduler are led by a live master at the end of
             the freeze, their Lease renewed in its last 15 s
  kube-proxy every worker's kube-proxy had a good answer from its server in the last 10 s (its
             own /healthz threshold) at every sample
  cilium-agent every other node's emulated Cilium agent (the kube-system/cilium DaemonSet pod,
             in-cluster config from its KUBERNETES_SERVICE_HOST/PORT) had a good answer from its
             server in the last 30 s (its /healthz threshold, which its readiness probe follows)
             at every sample
After the thaw: `testbed/bed.py health` passes (every node Ready, every apiserver, etcd member
and HAProxy backend up, the cilium-operator Deployment rolled out with every pod Ready) within
--recover seconds, and the frozen node's unreachable taints are gone.

The Cilium operator (Deployment kube-system/cilium-operator, 2 replicas) is not judged during the
freeze: its pods run on the two nodes the scheduler picked, possibly the frozen one; each resolves
the API from the same KUBERNETES_SERVICE_HOST/PORT as the agents, so the cilium-agent check on every
other node already shows whether that server answers; and its leader-election Lease moving to the
other replica when the leader's host is lost is the operator working, not a failure. Its rollout
and readiness are part of the health check after the thaw.

--expect survive (a converted bed): exit 0 when every check passes. --expect break (the negative
control, an unconverted pinned bed whose clients all name master 1): exit 0 when at least one of
leases/ready/leaders/kube-proxy/cilium-agent fails, so that the test can fail. The JSON report (timeline,
figures, verdicts) goes to reports/freeze/<layout>-<expect>.json. The bed is thawed whatever happens.
"""

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBSERVER = "kubeha-lb"
VIP = "https://172.30.0.10:6443"
KUBECONFIG = "/root/.kubeha-freeze-admin.conf"
MASTERS = ["kubeha-master1", "kubeha-master2", "kubeha-master3"]
WORKERS = ["kubeha-worker1", "kubeha-worker2"]
LEADER_LEASES = ["kube-controller-manager", "kube-scheduler"]
PROXY_STALE = 10.0        # kube-proxy's own /healthz window (testbed/emulators/kubeha_emu/proxy.py)
AGENT_STALE = 30.0        # the Cilium agent's /healthz window (testbed/emulators/kubeha_emu/agent.py)
LEADER_FRESH = 15.0       # leader-elect-lease-duration


def docker(*argv, timeout=30, check=True, stdin=None):
    return subprocess.run(["docker", *argv], check=check, text=True, capture_output=True,
                          timeout=timeout, input=stdin)


def kubectl(*argv):
    """(ok, seconds, parsed JSON or error text) of one kubectl call through the VIP."""
    started = time.monotonic()
    try:
        proc = docker("exec", OBSERVER, "kubectl", "--kubeconfig", KUBECONFIG, "--request-timeout=10s",
                      *argv, "-o", "json", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started, "timed out after 20 s"
    took = time.monotonic() - started
    if proc.returncode != 0:
        return False, took, (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
    return True, took, json.loads(proc.stdout)


def parse_time(text):
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def observer_kubeconfig(node, server_name=None):
    """The admin kubeconfig of a master that is not frozen, its server set to the VIP, on the
    observer (0600). Read before the freeze: the frozen host cannot be exec'd into. With
    `server_name`, the certificate is verified for that name instead of the VIP's address (an
    unconverted bed's certificates do not carry the VIP yet)."""
    text = docker("exec", node, "cat", "/etc/kubernetes/admin.conf").stdout
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("server:"):
            lines.append("    server: " + VIP)
            if server_name:
                lines.append("    tls-server-name: " + server_name)
        else:
            lines.append(line)
    docker("exec", "-i", OBSERVER, "sh", "-c", "umask 077; cat > " + KUBECONFIG, stdin="\n".join(lines) + "\n")


def status_age(node, component):
    """(seconds since the component's last good answer, its server) from its status file."""
    # one exec per node and sample: the node's clock, then the file
    proc = docker("exec", node, "sh", "-c", "date +%%s.%%N && cat /run/kubeha/%s.json" % component, check=False)
    if proc.returncode != 0:
        return None, None
    clock, _, text = proc.stdout.partition("\n")
    status = json.loads(text)
    return float(clock) - (status.get("last_ok") or 0), status.get("server")


def stale_check(samples, key, nodes, limit, what):
    """The longest time each node's component went without a good answer, over the samples."""
    worst = {}
    for n in nodes:
        ages = [s[key][n]["age"] for s in samples if s.get(key, {}).get(n)]
        worst[n] = max((a for a in ages if a is not None), default=None)
    return {"ok": all(a is not None and a <= limit for a in worst.values()),
            "detail": "longest time without a good answer: " + ", ".join(
                "%s %s" % (n, "unknown" if a is None else "%.0f s" % a) for n, a in worst.items())
            + " (%s)" % what}


def sample(t, frozen=None):
    out = {"t": round(t, 1)}
    ok, took, nodes = kubectl("get", "nodes")
    out["api"] = {"ok": ok, "seconds": round(took, 2)}
    if ok:
        out["ready"] = {}
        out["taints"] = {}
        for n in nodes["items"]:
            name = n["metadata"]["name"]
            ready = [c for c in n["status"].get("conditions") or [] if c["type"] == "Ready"]
            out["ready"][name] = ready[0]["status"] if ready else "missing"
            out["taints"][name] = sorted(tt["effect"] for tt in n["spec"].get("taints") or []
                                         if tt["key"] == "node.kubernetes.io/unreachable")
    else:
        out["api"]["error"] = nodes
    ok, _, leases = kubectl("-n", "kube-node-lease", "get", "leases")
    if ok:
        out["renew"] = {lz["metadata"]["name"]: lz["spec"].get("renewTime") for lz in leases["items"]}
    ok, _, leaders = kubectl("-n", "kube-system", "get", "leases", *LEADER_LEASES)
    if ok:
        items = leaders["items"] if "items" in leaders else [leaders]
        out["leaders"] = {lz["metadata"]["name"]: [lz["spec"].get("holderIdentity"), lz["spec"].get("renewTime")]
                          for lz in items}
    for key, component, nodes in (("proxy", "kube-proxy", WORKERS),
                                  ("cilium", "cilium-agent", [n for n in MASTERS + WORKERS if n != frozen])):
        out[key] = {}
        for n in nodes:
            age, server = status_age(n, component)
            out[key][n] = {"age": None if age is None else round(age, 1), "server": server}
    out["wall"] = time.time()
    return out


def judge(samples, frozen, seconds, grace_api):
    checks = {}
    api_calls = [s for s in samples if s["t"] >= 0]
    failed = [s for s in api_calls if not s["api"]["ok"]]
    late = [s for s in failed if s["t"] > grace_api]
    checks["api"] = {
        "ok": not late,
        "detail": "%d kubectl calls through the VIP during the freeze, %d failed (%s), none later than %d s"
                  % (len(api_calls), len(failed), ", ".join("t=%.0f s: %s" % (s["t"], s["api"].get("error", "")[:80])
                                                             for s in failed) or "none", grace_api)
        if not late else "%d call(s) failed later than %d s into the freeze: %s"
                         % (len(late), grace_api, ", ".join("t=%.0f s" % s["t"] for s in late)),
        "failed": len(failed), "calls": len(api_calls),
        "slowest": max((s["api"]["seconds"] for s in api_calls), default=None)}
    # Lease renewals of every other node: the longest time between two renewals seen, or since the
    # last renewal seen at the end of the freeze
    others = [n for n in MASTERS + WORKERS if n != frozen]
    gaps = {}
    for n in others:
        stamps = sorted({parse_time(s.get("renew", {}).get(n)) for s in samples if s.get("renew", {}).get(n)})
        stamps = [x for x in stamps if x is not None]
        end = max((s["wall"] for s in samples), default=0)
        points = stamps + [end]
        gaps[n] = round(max((b - a for a, b in zip(points, points[1:])), default=float("inf")), 1)
    checks["leases"] = {"ok": all(g < 40 for g in gaps.values()), "longest_gap_s": gaps,
                        "detail": "longest time without a renewal of each other node's Lease: "
                                  + ", ".join("%s %.0f s" % kv for kv in gaps.items()) + " (lease duration 40 s)"}
    not_ready = sorted({(n, s["t"]) for s in api_calls for n, v in (s.get("ready") or {}).items()
                        if n in others and v != "True"})
    frozen_unknown = [s["t"] for s in api_calls if (s.get("ready") or {}).get(frozen) == "Unknown"]
    checks["ready"] = {"ok": not not_ready and bool(frozen_unknown),
                       "detail": ("every other node Ready throughout" if not not_ready else
                                  "not Ready: " + ", ".join("%s at t=%.0f s" % x for x in not_ready[:6]))
                                 + "; %s marked Unknown %s" % (frozen, ("from t=%.0f s" % frozen_unknown[0])
                                                                 if frozen_unknown else "never")}
    last = [s for s in api_calls if s.get("leaders")]
    leader_detail, leaders_ok = [], bool(last)
    if last:
        final = last[-1]
        for name in LEADER_LEASES:
            holder, renew = final["leaders"].get(name, [None, None])
            fresh = renew is not None and final["wall"] - parse_time(renew) < LEADER_FRESH
            live = bool(holder) and not holder.startswith(frozen + "_")
            moved = [s["t"] for s in last if not s["leaders"].get(name, [""])[0].startswith(frozen + "_")]
            leaders_ok = leaders_ok and fresh and live
            leader_detail.append("%s: %s%s%s" % (name, (holder or "none").split("_")[0],
                                                 "" if fresh else " (lease not renewed in the last 15 s)",
                                                 (", on a live master from t=%.0f s" % moved[0]) if moved else ""))
    checks["leaders"] = {"ok": leaders_ok, "detail": "; ".join(leader_detail) or "leases never read"}
    checks["kube-proxy"] = stale_check(api_calls, "proxy", WORKERS, PROXY_STALE, "its /healthz fails after 10 s")
    checks["cilium-agent"] = stale_check(api_calls, "cilium", others, AGENT_STALE,
                                         "its /healthz, and so its readiness, fails after 30 s")
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layout")
    ap.add_argument("--node", default="kubeha-master1")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--expect", choices=["survive", "break"], default="survive")
    ap.add_argument("--grace-api", type=float, default=15,
                    help="seconds into the freeze after which no kubectl call may fail (default 15)")
    ap.add_argument("--recover", type=float, default=180)
    ap.add_argument("--server-name", help="verify the apiservers' certificate for this name instead of the VIP's "
                                          "address (the negative control: `kubernetes`, before the conversion)")
    args = ap.parse_args()
    frozen = args.node
    observer_source = next(m for m in MASTERS if m != frozen)
    observer_kubeconfig(observer_source, args.server_name)
    report = {"layout": args.layout, "frozen": frozen, "seconds": args.seconds, "expect": args.expect,
              "observer": "kubectl on %s through %s with %s's admin credentials" % (OBSERVER, VIP, observer_source)}
    samples = []
    start = time.monotonic()
    before = sample(-1.0, frozen)
    samples.append(before)
    print("freeze: %s paused for %.0f s (%s layout), watching from %s through %s"
          % (frozen, args.seconds, args.layout, OBSERVER, VIP), flush=True)
    try:
        docker("pause", frozen)
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            t = time.monotonic() - start
            samples.append(sample(t, frozen))
            time.sleep(max(0.0, 2.0 - (time.monotonic() - start - t)))
    finally:
        docker("unpause", frozen, check=False)
        thawed = time.monotonic()
    print("freeze: %s thawed after %.0f s" % (frozen, thawed - start), flush=True)
    checks = judge(samples, frozen, args.seconds, args.grace_api)
    health = subprocess.run([sys.executable, str(ROOT / "testbed/bed.py"), "health", args.layout,
                             "--wait", str(int(args.recover))], cwd=ROOT, text=True, capture_output=True)
    # The node lifecycle controller removes the taints on its next pass (every 5 s) after the
    # kubelet posts Ready again: wait for that too, within the same --recover budget.
    while True:
        recovered = time.monotonic() - thawed
        after = sample(recovered, frozen)
        taints_left = (after.get("taints") or {}).get(frozen)
        back = (after.get("ready") or {}).get(frozen) == "True" and not taints_left
        if back or recovered >= args.recover:
            break
        time.sleep(2)
    checks["recovery"] = {"ok": health.returncode == 0 and not taints_left
                                 and (after.get("ready") or {}).get(frozen) == "True",
                          "detail": "bed health %s; %.0f s after the thaw %s Ready=%s, unreachable taints %s"
                                    % ("passed" if health.returncode == 0 else "FAILED", recovered, frozen,
                                       (after.get("ready") or {}).get(frozen), taints_left or "none")}
    docker("exec", OBSERVER, "rm", "-f", KUBECONFIG, check=False)
    report.update(checks=checks, samples=samples, after=after)
    out = ROOT / "reports/freeze" / ("%s-%s.json" % (args.layout, args.expect))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for name, c in checks.items():
        print("  %-10s %s  %s" % (name, "ok  " if c["ok"] else "FAIL", c["detail"]))
    broken = [n for n in ("leases", "ready", "leaders", "kube-proxy", "cilium-agent") if not checks[n]["ok"]]
    if not checks["recovery"]["ok"]:
        print("freeze: %s did NOT come back within %.0f s after the thaw (%s)" % (frozen, args.recover, out))
        return 1
    if args.expect == "survive":
        good = all(c["ok"] for c in checks.values())
        print("freeze: the cluster %s the loss of %s (%s)" % ("survived" if good else "did NOT survive", frozen, out))
    else:
        good = bool(broken)
        print("freeze (negative control): %s (%s)" % (
            ("the unconverted cluster broke as expected: " + ", ".join(broken)) if broken
            else "the unconverted cluster did not break: the test could not fail", out))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
