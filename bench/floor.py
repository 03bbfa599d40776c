#!/usr/bin/env python3
"""The floor of a conversion: only its unavoidable restarts and readiness waits, nothing else.

Replays, on the running test bed, the restarts a conversion run made (read from that run's
bench_timer JSON: every handler that reported "changed" on a host), in the same serial order:
  1. masters one at a time: local apiserver /readyz; each restarted component of that master
     (kubelet: systemctl restart + /healthz; kube-controller-manager / kube-scheduler: SIGTERM,
     new process, /healthz); local /readyz and the endpoint's /readyz again;
  2. workers in the same batches (serial as in the run): kubelet restart, /healthz, node Ready and
     its Lease renewed after the restart;
  3. kube-proxy rolled node by node (when the run rolled it): delete the pod, new pod Running,
     kube-proxy /healthz on the node.
Everything goes straight through `docker exec` with 0.2 s polls: no Ansible, no file edits, so the
time measured is what the restarts and waits themselves cost on this machine. TLS is verified
(cluster CA; the controller-manager/scheduler self-signed cert pinned on first contact).

    bench/floor.py --timer build/bench/kubeha-timer.json --inventory build/bench/inventory.yml --out floor.json
"""

import argparse
import json
import subprocess
import sys
import threading
import time

import yaml

POLL = 0.2
TIMEOUT = 180
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
PORTS = {"kube-controller-manager": 10257, "kube-scheduler": 10259}


def sh(host, script, check=True):
    proc = subprocess.run(["docker", "exec", host, "bash", "-c", script], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError("%s: %s: rc %d: %s" % (host, script.splitlines()[0][:80], proc.returncode, proc.stderr.strip()[:300]))
    return proc


def wait(host, script, what):
    deadline = time.time() + TIMEOUT
    while True:
        proc = sh(host, script, check=False)
        if proc.returncode == 0:
            return proc.stdout
        if time.time() > deadline:
            raise RuntimeError("%s: timeout waiting for %s: %s" % (host, what, proc.stderr.strip()[:300]))
        time.sleep(POLL)


def readyz(host, target):
    wait(host, "curl -sf --max-time 3 --cacert /etc/kubernetes/ssl/ca.crt https://%s/readyz" % target,
         "readyz of " + target)


def restart_static(host, component):
    port = PORTS[component]
    old = sh(host, "pidof -x %s || true" % component).stdout.split()
    sh(host, "kill -TERM %s" % " ".join(old)) if old else None
    wait(host, "new=$(pidof -x %s) && [ -n \"$new\" ] && ! echo \" %s \" | grep -q \" $new \"" % (component, " ".join(old)),
         component + " new process")
    wait(host, "pin=$(mktemp); trap 'rm -f $pin' EXIT; echo | timeout 3 openssl s_client -connect 127.0.0.1:%d 2>/dev/null "
               "| openssl x509 >$pin 2>/dev/null && curl -sf --max-time 3 --cacert $pin --resolve localhost:%d:127.0.0.1 "
               "https://localhost:%d/healthz" % (port, port, port), component + " healthz")


def lease(master, node):
    return sh(master, "%s -n kube-node-lease get lease %s -o jsonpath={.spec.renewTime}" % (KUBECTL, node),
              check=False).stdout.strip()


def restart_kubelet(host, master=None, node_checks=False):
    before = lease(master, host) if node_checks else None
    sh(host, "systemctl restart kubelet")
    wait(host, "curl -sf --max-time 3 http://127.0.0.1:10248/healthz", "kubelet healthz")
    if node_checks:
        wait(master, "[ \"$(%s get node %s -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
             % (KUBECTL, host), host + " Ready")
        wait(master, "r=$(%s -n kube-node-lease get lease %s -o jsonpath={.spec.renewTime}) && [ -n \"$r\" ] && [ \"$r\" != '%s' ]"
             % (KUBECTL, host, before), host + " lease renewed")


def roll_kube_proxy(master, node):
    pods = sh(master, "%s -n kube-system get pods -l k8s-app=kube-proxy --field-selector spec.nodeName=%s "
                      "-o 'jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{\"\\n\"}{end}'" % (KUBECTL, node)).stdout
    old = [line.split() for line in pods.splitlines() if line.strip()]
    for name, _uid in old:
        sh(master, "%s -n kube-system delete pod --wait=false %s" % (KUBECTL, name))
    olduids = " ".join(u for _n, u in old)
    wait(master, "%s -n kube-system get pods -l k8s-app=kube-proxy --field-selector spec.nodeName=%s "
                 "-o 'jsonpath={range .items[*]}{.metadata.uid} {.status.phase}{\"\\n\"}{end}' | "
                 "awk -v old=' %s ' '$2 == \"Running\" && index(old, \" \" $1 \" \") == 0 {found=1} END {exit !found}'"
                 % (KUBECTL, node, olduids), node + " new kube-proxy pod")
    wait(node, "curl -sf --max-time 3 http://127.0.0.1:10256/healthz", node + " kube-proxy healthz")


def bare(name):
    """Task name without the "<collection>.<role> : " prefix Ansible gives role tasks."""
    return name.split(" : ", 1)[-1]


COMPONENTS = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-apiserver")


def restarts_of(timer):
    """[(host, component)] in run order: the handlers named `restart <component>` that changed
    something (the reference's) and kubeha's component_restart tasks that restarted components (a
    loop on the masters, one task per worker: the callback records which components changed)."""
    out = []
    for task in timer["tasks"]:
        name = bare(task["name"])
        if task.get("handler"):
            for component in COMPONENTS:
                if name.endswith("restart " + component):
                    for host, status in sorted(task.get("results", {}).items()):
                        if status == "changed":
                            out.append((host, component))
        elif task.get("action", "").endswith("component_restart"):
            for host, items in sorted((task.get("changed_items") or {}).items()):
                out.extend((host, item) for item in items if item in COMPONENTS)
    # the kube-proxy roll: kubeha's one component_restart task (name kube-proxy), or the
    # reference's per-node delete task
    rolled = any((bare(t["name"]).lower().startswith("kube-proxy node | delete") and
                  any(s == "changed" for s in t.get("results", {}).values())) or
                 any("kube-proxy" in items for items in (t.get("changed_items") or {}).values())
                 for t in timer["tasks"])
    return out, rolled


def batches(hosts, serial):
    if serial.endswith("%"):
        size = int(len(hosts) * float(serial[:-1]) / 100.0) or 1
    else:
        size = int(serial)
    return [hosts[i:i + size] for i in range(0, len(hosts), size)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timer", required=True, help="bench_timer JSON of the conversion run to replay")
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--serial", default="20%", help="worker batch size of the run")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.timer, encoding="utf-8") as handle:
        timer = json.load(handle)
    with open(args.inventory, encoding="utf-8") as handle:
        inv = yaml.safe_load(handle)["all"]
    children = inv["children"]
    masters = list(children["kube_control_plane"]["hosts"])
    workers = [h for h in children["kube_node"]["hosts"] if h not in masters]
    hostvars = inv["hosts"]
    lb = inv["vars"].get("apiserver_loadbalancer_domain_name") or inv["vars"]["loadbalancer_apiserver"]["address"]
    endpoint = "%s:%s" % (lb, inv["vars"]["loadbalancer_apiserver"].get("port", 6443))
    restarts, rolled = restarts_of(timer)
    first = masters[0]
    steps = []
    t0 = time.time()

    def step(name, func, *fargs, **fkw):
        start = time.time()
        func(*fargs, **fkw)
        steps.append({"step": name, "seconds": round(time.time() - start, 3)})

    for master in masters:
        ip = hostvars[master]["ip"]
        step("%s readyz" % master, readyz, master, "%s:6443" % ip)
        for host, component in restarts:
            if host != master:
                continue
            if component == "kubelet":
                step("%s restart kubelet" % master, restart_kubelet, master)
            elif component in PORTS:
                step("%s restart %s" % (master, component), restart_static, master, component)
        step("%s readyz again" % master, readyz, master, "%s:6443" % ip)
        step("%s endpoint readyz" % master, readyz, master, endpoint)
    restarted_workers = [w for w in workers if (w, "kubelet") in restarts]
    for batch in batches(restarted_workers, args.serial):
        start = time.time()
        errors = []

        def one(worker):
            try:
                restart_kubelet(worker, master=first, node_checks=True)
            except Exception as err:  # reported below
                errors.append(err)
        threads = [threading.Thread(target=one, args=(w,)) for w in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        steps.append({"step": "workers %s kubelet restart + Ready + lease" % ",".join(batch),
                      "seconds": round(time.time() - start, 3)})
    if rolled:
        for node in masters + workers:
            step("%s kube-proxy roll" % node, roll_kube_proxy, first, node)
    total = time.time() - t0
    report = {"started": t0, "floor_seconds": round(total, 3), "restarts": restarts, "kube_proxy_rolled": rolled, "steps": steps}
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print("floor: %.1f s (%d restarts, kube-proxy roll: %s)" % (total, len(restarts), rolled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
