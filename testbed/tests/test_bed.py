"""testbed/bed.py without docker: the snapshot key and the comparison of health reports."""

import importlib.util
import json
import os
import shutil

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location("bed", os.path.join(HERE, "..", "bed.py"))
bed = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bed)


def fresh():
    return {
        "HAProxy backends": {"ok": True, "detail": "kubeha-master1=UP,kubeha-master2=UP"},
        "kubelet on kubeha-worker1 connected": {"ok": True, "detail": "https://172.30.0.11:6443"},
        "node kubeha-worker1 Ready": {"ok": True, "detail": "kubeha-worker1"},
    }


def test_same_checks_same_results_is_no_difference():
    diffs, count = bed.diff_reports(fresh(), fresh())
    assert diffs == [] and count == 3


def test_a_failed_check_is_a_difference():
    now = fresh()
    now["node kubeha-worker1 Ready"] = {"ok": False, "detail": "", "error": "kubeha-worker1=Unknown@..."}
    diffs, _ = bed.diff_reports(fresh(), now)
    assert len(diffs) == 1 and diffs[0].startswith("node kubeha-worker1 Ready: fresh True")


def test_another_server_is_a_difference():
    now = fresh()
    now["kubelet on kubeha-worker1 connected"]["detail"] = "https://172.30.0.10:6443"
    diffs, _ = bed.diff_reports(fresh(), now)
    assert diffs == ["kubelet on kubeha-worker1 connected: fresh True 'https://172.30.0.11:6443', "
                     "now True 'https://172.30.0.10:6443'"]


def test_a_check_missing_on_either_side_is_a_difference():
    now = fresh()
    del now["HAProxy backends"]
    now["etcd member on kubeha-master1 healthy"] = {"ok": True, "detail": "https://172.30.0.11:2379"}
    diffs, count = bed.diff_reports(fresh(), now)
    assert sorted(diffs) == ["HAProxy backends: missing",
                             "etcd member on kubeha-master1 healthy: not checked on the fresh bed"]
    assert count == 4


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """bed.py on a copy of the files its key covers, with the node image hash pinned."""
    for rel in ["molecule/pinned/molecule.yml"] + bed.KEY_PATHS:
        src = os.path.join(bed.REPO, rel)
        dst = tmp_path / rel
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    monkeypatch.setattr(bed, "REPO", str(tmp_path))
    monkeypatch.setattr(bed, "node_image", lambda: "kubeha-node:0123456789ab")
    return tmp_path


def test_key_is_stable_and_follows_every_file_that_shapes_the_bed(repo_copy, monkeypatch):
    key = bed.snapshot_key("pinned")
    assert key == bed.snapshot_key("pinned") and len(key) == 16
    # a byte more in the installer, an emulator, the inventory or the scenario: a new key
    for rel in ["testbed/install/site.yml", "testbed/emulators/kubeha_emu/common.py",
                "testbed/inventory/pinned.yml", "molecule/pinned/molecule.yml"]:
        path = repo_copy / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert bed.snapshot_key("pinned") != key, rel
        path.write_bytes(original)
    assert bed.snapshot_key("pinned") == key
    # the emulators' tests and caches do not shape the bed
    (repo_copy / "testbed/emulators/kubeha_emu/__pycache__").mkdir(exist_ok=True)
    (repo_copy / "testbed/emulators/kubeha_emu/__pycache__/x.pyc").write_bytes(b"x")
    assert bed.snapshot_key("pinned") == key
    # kubespray's artifacts, written next to the inventories at every bring-up, do not either
    (repo_copy / bed.ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
    (repo_copy / bed.ARTIFACTS_DIR / "admin.conf").write_text("apiVersion: v1\n")
    assert bed.snapshot_key("pinned") == key
    # a new node image recipe: a new key
    monkeypatch.setattr(bed, "node_image", lambda: "kubeha-node:ba9876543210")
    assert bed.snapshot_key("pinned") != key


def test_artifact_admin_conf_as_kubespray_writes_it():
    admin = {"apiVersion": "v1", "kind": "Config", "preferences": {},
             "clusters": [{"cluster": {"certificate-authority-data": "Q0E=", "server": "https://127.0.0.1:6443"},
                           "name": "cluster.local"}],
             "contexts": [{"context": {"cluster": "cluster.local", "user": "kubernetes-admin"},
                           "name": "kubernetes-admin@cluster.local"}],
             "current-context": "kubernetes-admin@cluster.local",
             "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "Q1JU",
                                                             "client-key-data": "S0VZ"}}]}
    text = bed.artifact_admin_conf(admin, "cluster.local", "172.30.0.11", 6443)
    # kubespray v2.30.0 roles/kubernetes/client/tasks/main.yml, through to_nice_yaml(indent=2)
    assert text == """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://172.30.0.11:6443
  name: cluster.local
contexts:
- context:
    cluster: cluster.local
    user: kubernetes-admin-cluster.local
  name: kubernetes-admin-cluster.local@cluster.local
current-context: kubernetes-admin-cluster.local@cluster.local
kind: Config
preferences: {}
users:
- name: kubernetes-admin-cluster.local
  user:
    client-certificate-data: Q1JU
    client-key-data: S0VZ
"""


def test_unknown_layout_is_named():
    with pytest.raises(bed.BedError, match="unknown layout 'nosuch'"):
        bed.platforms("nosuch")


class FakeDocker:
    """Records the docker commands bed.snapshot runs; `exit_codes` is what `docker inspect` says."""

    def __init__(self, exit_codes):
        self.exit_codes, self.calls = exit_codes, []

    def __call__(self, *argv, check=True, capture=True, timeout=None):
        self.calls.append(argv)
        out = ""
        if argv[:2] == ("docker", "inspect"):
            out = self.exit_codes[argv[-1]]
        elif argv[:2] == ("docker", "images"):
            out = "kubeha-bed:pinned-kubeha-lb-oldkey\nkubeha-bed:pinned-kubeha-lb-newkey\n"
        return type("Proc", (), {"returncode": 0, "stdout": out, "stderr": ""})()


def healthy_report(tmp_path):
    path = tmp_path / "health.json"
    path.write_text('{"healthy": true, "checks": {"HAProxy backends": {"ok": true, "detail": "x=UP"}}}')
    return str(path)


def test_snapshot_commits_every_node_with_the_fresh_health_and_drops_older_keys(tmp_path, monkeypatch):
    names = [p["name"] for p in bed.platforms("pinned")]
    docker = FakeDocker({n: "0" for n in names})
    monkeypatch.setattr(bed, "run", docker)
    bed.snapshot("pinned", "newkey", healthy_report(tmp_path))
    commits = [c for c in docker.calls if c[:2] == ("docker", "commit")]
    assert [c[-1] for c in commits] == ["kubeha-bed:pinned-%s-newkey" % n for n in names]
    # the label holds the fresh bed's checks, as JSON in a quoted Dockerfile string
    labels = [json.loads(json.loads(c[3].split("=", 1)[1])) for c in commits]
    assert labels == [{"HAProxy backends": {"ok": True, "detail": "x=UP"}}] * len(names)
    assert ("docker", "rmi", "kubeha-bed:pinned-kubeha-lb-oldkey") in docker.calls
    assert ("docker", "rmi", "kubeha-bed:pinned-kubeha-lb-newkey") not in docker.calls


def test_snapshot_refuses_a_node_killed_at_the_stop_timeout(tmp_path, monkeypatch):
    names = [p["name"] for p in bed.platforms("pinned")]
    docker = FakeDocker(dict({n: "0" for n in names}, **{"kubeha-master2": "137"}))
    monkeypatch.setattr(bed, "run", docker)
    with pytest.raises(bed.BedError, match="kubeha-master2 did not shut down"):
        bed.snapshot("pinned", "newkey", healthy_report(tmp_path))
    assert not [c for c in docker.calls if c[:2] in (("docker", "commit"), ("docker", "rmi"))]


def test_snapshot_refuses_an_unhealthy_bed(tmp_path, monkeypatch):
    docker = FakeDocker({})
    monkeypatch.setattr(bed, "run", docker)
    path = tmp_path / "health.json"
    path.write_text('{"healthy": false, "checks": {}}')
    with pytest.raises(bed.BedError, match="unhealthy"):
        bed.snapshot("pinned", "newkey", str(path))
    assert docker.calls == []


def test_health_targets_of_every_layout_find_the_same_six_nodes():
    for layout in ("pinned", "kubespray", "kubeadm", "kubeadm-dns"):
        targets = {host: env for host, _script, env in bed.health_targets(layout)}
        assert sorted(targets) == ["kubeha-lb", "kubeha-master1", "kubeha-master2", "kubeha-master3",
                                   "kubeha-worker1", "kubeha-worker2"], layout
        assert targets["kubeha-lb"]["MASTER_IPS"] == "172.30.0.11 172.30.0.12 172.30.0.13"
        assert targets["kubeha-master1"]["NODES"].split() == ["kubeha-master1", "kubeha-master2", "kubeha-master3",
                                                              "kubeha-worker1", "kubeha-worker2"]
        for master in ("kubeha-master1", "kubeha-master2", "kubeha-master3"):
            assert targets[master]["ETCD"] == "1" and "kube-scheduler" in targets[master]["COMPONENTS"]
        assert "ETCD" not in targets["kubeha-worker1"]


@pytest.mark.parametrize("layout", ["kubeadm", "kubeadm-dns"])
def test_kubeadm_health_checks_stacked_etcd_with_kubeadms_certificates(layout):
    targets = {host: env for host, _script, env in bed.health_targets(layout)}
    for master in ("kubeha-master1", "kubeha-master2", "kubeha-master3"):
        env = targets[master]
        assert env["ETCD_STATIC_POD"] == "1"
        assert (env["ETCD_CA"], env["ETCD_CERT"], env["ETCD_KEY"]) == (
            "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "/etc/kubernetes/pki/etcd/healthcheck-client.key")
    assert targets["kubeha-master1"]["ETCD_MEMBERS"] == "kubeha-master1 kubeha-master2 kubeha-master3"
    pinned = {host: env for host, _script, env in bed.health_targets("pinned")}
    assert "ETCD_STATIC_POD" not in pinned["kubeha-master1"] and "ETCD_MEMBERS" not in pinned["kubeha-master1"]


@pytest.mark.parametrize("layout", ["kubeadm", "kubeadm-dns"])
def test_no_kubespray_artifact_for_kubeadm(layout, monkeypatch, capsys):
    monkeypatch.setattr(bed, "run", lambda *a, **k: pytest.fail("no command expected: %r" % (a,)))
    bed.artifacts(layout)
    assert "not made by kubespray" in capsys.readouterr().out


def docker_runs(layout, monkeypatch):
    """The `docker run` argv of every node bed.create makes for the layout (nothing run)."""
    calls = []

    def fake(*argv, check=True, capture=True, timeout=None):
        calls.append(argv)
        return type("Proc", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(bed, "run", fake)
    monkeypatch.setattr(bed, "ssh_access", lambda layout: None)
    monkeypatch.setattr(bed, "node_image", lambda: "kubeha-node:0123456789ab")
    bed.create(layout)
    return {c[c.index("--name") + 1]: c for c in calls if c[:2] == ("docker", "run")}


def added_hosts(argv):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--add-host"]


def test_kubeadm_dns_nodes_resolve_cluster_endpoint_to_master1(monkeypatch):
    # docker owns /etc/hosts (regenerated at every `docker run`, not in a snapshot): the line
    # `172.30.0.11<TAB>cluster-endpoint` comes from --add-host, on every node and the load balancer
    runs = docker_runs("kubeadm-dns", monkeypatch)
    assert sorted(runs) == ["kubeha-lb", "kubeha-master1", "kubeha-master2", "kubeha-master3",
                            "kubeha-worker1", "kubeha-worker2"]
    for node, argv in runs.items():
        assert "cluster-endpoint:172.30.0.11" in added_hosts(argv), node
        assert "kubernetes-api.kubeha.test:172.30.0.10" in added_hosts(argv), node
    # layout kubeadm's nodes do not know the name
    for node, argv in docker_runs("kubeadm", monkeypatch).items():
        assert added_hosts(argv) == ["kubernetes-api.kubeha.test:172.30.0.10"], node


def test_kubeadm_dns_scenario_is_kubeadms_but_for_the_endpoint():
    """molecule/kubeadm-dns is a copy of molecule/kubeadm: only the name, its /etc/hosts line and
    what the operator gives kubeha for it differ, so the copy cannot drift."""
    plain, dns = bed.scenario("kubeadm"), bed.scenario("kubeadm-dns")
    # (the platforms share their anchor's dicts: compare copies)
    platforms = [dict(p) for p in dns["platforms"]]
    for platform in platforms:
        hosts = dict(platform["etc_hosts"])
        assert hosts.pop("cluster-endpoint") == "172.30.0.11"
        assert platform["labels"] == {"kubeha_layout": "kubeadm-dns"}
        platform.update(etc_hosts=hosts, labels={"kubeha_layout": "kubeadm"})
    assert platforms == plain["platforms"]
    dns_vars = dns["provisioner"]["inventory"]["group_vars"]["all"]
    plain_vars = plain["provisioner"]["inventory"]["group_vars"]["all"]
    assert dns_vars.pop("kubeha_testbed_layout") == "kubeadm-dns" and plain_vars.pop("kubeha_testbed_layout") == "kubeadm"
    assert dns_vars.pop("kubeha_endpoint") == "cluster-endpoint:6443"
    assert plain_vars.pop("kubeha_endpoint") == "172.30.0.10:6443"
    assert dns_vars.pop("kubeha_endpoint_hosts_address") == "172.30.0.10"
    assert dns_vars == plain_vars
    for part in ("provisioner", "platforms"):
        dns.pop(part), plain.pop(part)
    assert dns == plain


@pytest.mark.parametrize("layout", ["kubeadm", "kubeadm-dns"])
def test_plain_inventory_gives_kubeha_what_the_scenario_gives_it(layout):
    """testbed/inventory/<layout>/ (what convert.sh, drill.sh and test-playbooks.sh use) and the
    molecule scenario's inventory hand kubeha the same kubeha_* variables."""
    directory = os.path.join(bed.REPO, "testbed", "inventory", layout)
    with open(os.path.join(directory, "hosts.yml"), encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)["all"]["vars"]
    group_vars = os.path.join(directory, "group_vars", "all")
    for name in sorted(os.listdir(group_vars)):
        with open(os.path.join(group_vars, name), encoding="utf-8") as handle:
            inventory.update(yaml.safe_load(handle))
    molecule = bed.scenario(layout)["provisioner"]["inventory"]["group_vars"]["all"]
    ours = {k: v for k, v in inventory.items() if k.startswith("kubeha_") and k != "kubeha_testbed_ssh_dir"}
    theirs = {k: v for k, v in molecule.items() if k.startswith("kubeha_") and k != "kubeha_testbed_ssh_dir"}
    assert ours == theirs
    assert ours["kubeha_testbed_layout"] == layout


# ---- layout novip (issue #20): pinned's cluster without the load balancer ----------------------------

def test_novip_scenario_is_pinneds_without_the_load_balancer():
    """molecule/novip is molecule/pinned minus kubeha-lb (and its /etc/hosts name), with the
    endpoint kubeha provisions as a VIP on the masters: the copy cannot drift."""
    pinned, novip = bed.scenario("pinned"), bed.scenario("novip")
    lb = [dict(p) for p in pinned["platforms"] if p["name"] == "kubeha-lb"][0]
    masters_workers = [dict(p) for p in pinned["platforms"] if p["name"] != "kubeha-lb"]
    for platform in masters_workers:
        platform.pop("etc_hosts")
        platform["labels"] = {"kubeha_layout": "novip"}
    assert [dict(p) for p in novip["platforms"]] == masters_workers
    assert lb["networks"] == [{"name": "kubeha", "ipv4_address": "172.30.0.10"}]
    # what VRRP needs: NET_ADMIN added, nothing dropped from docker's default set (NET_RAW)
    for platform in novip["platforms"]:
        assert "NET_ADMIN" in platform["capabilities"] and not platform.get("cap_drop")
        assert "172.30.0.10" not in str(platform["networks"])
    pinned_vars = dict(pinned["provisioner"]["inventory"]["group_vars"]["all"])
    novip_vars = dict(novip["provisioner"]["inventory"]["group_vars"]["all"])
    assert pinned_vars.pop("kubeha_testbed_layout") == "pinned" and novip_vars.pop("kubeha_testbed_layout") == "novip"
    assert pinned_vars.pop("loadbalancer_apiserver") == {"address": "172.30.0.10", "port": 6443}
    assert novip_vars.pop("loadbalancer_apiserver") == {"address": "172.30.0.10", "port": 8443}
    assert pinned_vars.pop("apiserver_loadbalancer_domain_name") == "lb-apiserver.kubernetes.local"
    assert novip_vars.pop("apiserver_loadbalancer_domain_name") == "172.30.0.10"
    assert novip_vars.pop("kubeha_vip_provision") == "keepalived_haproxy"
    assert 0 < len(novip_vars.pop("kubeha_vip_auth_pass")) <= 8
    assert novip_vars == pinned_vars
    pinned_hosts = dict(pinned["provisioner"]["inventory"]["host_vars"])
    assert pinned_hosts.pop("kubeha-lb")["ip"] == "172.30.0.10"
    assert novip["provisioner"]["inventory"]["host_vars"] == pinned_hosts
    for part in ("provisioner", "platforms"):
        pinned.pop(part), novip.pop(part)
    assert novip == pinned


def test_novip_inventory_gives_kubeha_what_the_scenario_gives_it():
    """testbed/inventory/novip/ (convert.sh, drill.sh, test-playbooks.sh) and molecule/novip hand
    kubeha and kubespray the same variables; the shared group_vars (port 6443's load balancer) do
    not apply to it."""
    directory = os.path.join(bed.REPO, "testbed", "inventory", "novip")
    with open(os.path.join(directory, "hosts.yml"), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]
    inventory = dict(hosts["vars"])
    group_vars = os.path.join(directory, "group_vars", "all")
    for name in sorted(os.listdir(group_vars)):
        with open(os.path.join(group_vars, name), encoding="utf-8") as handle:
            inventory.update(yaml.safe_load(handle))
    assert "loadbalancer.yml" not in os.listdir(group_vars)
    molecule = bed.scenario("novip")["provisioner"]["inventory"]
    wanted = ("kubeha_", "loadbalancer_apiserver", "apiserver_loadbalancer_domain_name")
    ours = {k: v for k, v in inventory.items() if k.startswith(wanted) and k != "kubeha_testbed_ssh_dir"}
    theirs = {k: v for k, v in molecule["group_vars"]["all"].items()
              if k.startswith(wanted) and k != "kubeha_testbed_ssh_dir"}
    assert ours == theirs
    assert ours["loadbalancer_apiserver"] == {"address": "172.30.0.10", "port": 8443}
    # kubespray's groups, the same hosts and addresses as the scenario, no load balancer
    assert sorted(hosts["children"]) == ["calico_rr", "etcd", "k8s_cluster", "kube_control_plane", "kube_node"]
    assert {h: {k: v for k, v in hv.items() if k != "ansible_connection"} for h, hv in molecule["host_vars"].items()} \
        == hosts["hosts"]
    # pins.yml is the shared one (a link), testbed.yml a copy one directory deeper
    assert os.path.realpath(os.path.join(group_vars, "pins.yml")) == os.path.join(
        bed.REPO, "testbed", "inventory", "group_vars", "all", "pins.yml")


def test_novip_health_checks_the_apiservers_from_the_first_master_and_no_load_balancer():
    targets = {host: env for host, _script, env in bed.health_targets("novip")}
    assert sorted(targets) == ["kubeha-master1", "kubeha-master2", "kubeha-master3", "kubeha-worker1", "kubeha-worker2"]
    assert targets["kubeha-master1"]["APISERVER_IPS"] == "172.30.0.11 172.30.0.12 172.30.0.13"
    assert targets["kubeha-master1"]["APISERVER_CA"] == "/etc/kubernetes/pki/ca.crt"
    assert "APISERVER_IPS" not in targets["kubeha-master2"]
    # the layouts with a load balancer check the apiservers from it, as before
    pinned = {host: env for host, _script, env in bed.health_targets("pinned")}
    assert all("APISERVER_IPS" not in env for env in pinned.values())


def test_novip_containers_and_kubesprays_artifact_beside_its_own_inventory(monkeypatch):
    runs = docker_runs("novip", monkeypatch)
    assert sorted(runs) == ["kubeha-master1", "kubeha-master2", "kubeha-master3", "kubeha-worker1", "kubeha-worker2"]
    for node, argv in runs.items():
        assert added_hosts(argv) == [], node
        assert "NET_ADMIN" in argv and "--cap-drop" not in argv
    assert bed.artifacts_dir("novip") == os.path.join("testbed", "inventory", "novip", "artifacts")
    assert bed.artifacts_dir("pinned") == bed.ARTIFACTS_DIR
    assert "novip" in bed.KUBESPRAY_LAYOUTS


def test_no_artifacts_directory_is_part_of_the_key():
    inventories = os.path.join(bed.REPO, "testbed", "inventory")
    assert bed.is_artifacts_dir(inventories, "artifacts")
    assert bed.is_artifacts_dir(os.path.join(inventories, "novip"), "artifacts")
    assert not bed.is_artifacts_dir(os.path.join(inventories, "novip"), "group_vars")
    assert not bed.is_artifacts_dir(os.path.join(bed.REPO, "testbed", "install"), "artifacts")
