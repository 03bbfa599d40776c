#!/usr/bin/env python3
"""Write a kubespray-format YAML inventory of the test bed for the benchmarks.

The hosts, groups and variables come from the molecule scenario that builds the test bed
(molecule/<layout>/molecule.yml), so the benchmark inventory is the same cluster molecule made.
--workers N adds kubeha-worker3..N (IPs 172.30.0.30+, see bench/scale.sh) to kube_node and
k8s_cluster; --only-workers keeps only the named workers in kube_node (the others stay out of the
inventory), so the worker phase can be run on a chosen set. Connection: SSH as the login user with
sudo, exactly as the test bed's own inventories connect (testbed/inventory/group_vars/all/testbed.yml),
to each node's IP.

--added-rtt-ms MS sends every SSH connection through bench/latency_proxy.py (MS/2 one way in each
direction), with its own ControlPersist sockets so that no connection made without it is reused.

    bench/inventory.py --layout pinned --out build/bench/inventory.yml [--workers 16] [--added-rtt-ms 20]
"""

import argparse
import os
import shlex
import sys

import yaml

EXTRA_WORKER_BASE = 30  # kubeha-worker3 -> 172.30.0.30, worker4 -> .31, ...


def extra_worker_ip(index):
    """IP of kubeha-worker<index> for index >= 3."""
    return "172.30.0.%d" % (EXTRA_WORKER_BASE + index - 3)


def build(layout, workers, only_workers, repo, lb_drain=True, added_rtt_ms=0):
    with open(os.path.join(repo, "molecule", layout, "molecule.yml"), encoding="utf-8") as handle:
        scenario = yaml.safe_load(handle)
    inv = scenario["provisioner"]["inventory"]
    host_vars = dict(inv.get("host_vars") or {})
    with open(os.path.join(repo, "testbed", "inventory", "group_vars", "all", "testbed.yml"), encoding="utf-8") as handle:
        connection = yaml.safe_load(handle)
    group_vars = dict(connection, **((inv.get("group_vars") or {}).get("all") or {}))
    # the key, known_hosts and control sockets of the running bed (made by testbed/bed.py ssh-access)
    group_vars["kubeha_testbed_ssh_dir"] = os.path.join(repo, ".cache", "bed", "ssh")
    if added_rtt_ms:
        proxy = "%s %s --delay-ms %g %%h %%p" % (sys.executable, os.path.join(repo, "bench", "latency_proxy.py"),
                                                added_rtt_ms / 2.0)
        group_vars["ansible_ssh_common_args"] += " -o ProxyCommand=%s" % shlex.quote(proxy)
        group_vars["ansible_control_path_dir"] = "{{ kubeha_testbed_ssh_dir }}/cp-rtt%d" % added_rtt_ms
    if lb_drain:
        # what an operator with this HAProxy adds (as chaos/ does): kubeha drains each master there
        # around its certificate change
        group_vars["kubeha_lb_haproxy_host"] = "kubeha-lb"
    groups = {}
    hosts = []
    for platform in scenario["platforms"]:
        hosts.append(platform["name"])
        for group in platform.get("groups") or []:
            groups.setdefault(group, []).append(platform["name"])
    for index in range(3, workers + 1):
        name = "kubeha-worker%d" % index
        ip = extra_worker_ip(index)
        hosts.append(name)
        host_vars[name] = {"ip": ip, "access_ip": ip}
        for group in ("kube_node", "k8s_cluster"):
            groups.setdefault(group, []).append(name)
    if only_workers is not None:
        masters = set(groups.get("kube_control_plane", []))
        drop = [h for h in groups.get("kube_node", []) if h not in masters and h not in only_workers]
        hosts = [h for h in hosts if h not in drop]
        for group in groups:
            groups[group] = [h for h in groups[group] if h not in drop]
    def host_entry(name):
        entry = dict(host_vars.get(name) or {})
        entry["ansible_host"] = entry["ip"]
        return entry

    out = {"all": {"hosts": {h: host_entry(h) for h in hosts},
                   "vars": group_vars,
                   "children": {g: {"hosts": {h: None for h in members}} for g, members in groups.items()}}}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="pinned")
    parser.add_argument("--workers", type=int, default=2, help="total number of workers (>= 2)")
    parser.add_argument("--only-workers", default=None,
                        help="comma-separated worker names to keep (default: all)")
    parser.add_argument("--no-lb-drain", action="store_true", help="leave kubeha_lb_haproxy_host unset")
    parser.add_argument("--added-rtt-ms", type=float, default=0,
                        help="round-trip time added to every SSH connection (bench/latency_proxy.py)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    only = None if args.only_workers is None else [w for w in args.only_workers.split(",") if w]
    inventory = build(args.layout, max(args.workers, 2), only, repo, lb_drain=not args.no_lb_drain,
                      added_rtt_ms=args.added_rtt_ms)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("# generated by bench/inventory.py: do not edit\n")
        yaml.safe_dump(inventory, handle, default_flow_style=False, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
