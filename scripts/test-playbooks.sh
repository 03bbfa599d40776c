#!/usr/bin/env bash
# End-to-end tests of playbooks/convert.yml, rollback.yml, drill.yml and the kubespray hook on the
# RUNNING test bed (make testbed LAYOUT=...), which must be unconverted at the start; it is left
# unconverted (rolled back) at the end.
#   scripts/test-playbooks.sh [pinned|kubespray|kubeadm|kubeadm-dns|novip]      (INVENTORY=... to use another inventory)
#   KUBEHA_TEST_TIER=core (make test): checks 0, 1, 3, 3a, 4, 4d, 4a, 4c and 5 only; full (the
#   default, make test-full): all of them
# Checks, each with a snapshot (sha256 of every file under /etc/kubernetes, /root/.kube/config and
# the users' ~/.kube/config on every host and of kubespray's artifacts/admin.conf on the
# controller, resourceVersion and data hash of the three ConfigMaps, generation and spec hash of
# every DaemonSet and Deployment; playbooks/tests/snapshot.yml):
#   1. dry run (--check --diff) changes nothing and lists the changes
#   2. preflight refusals change nothing: no loadbalancer_apiserver, endpoint unreachable, endpoint
#      forwarding to two of three masters (disabled; drained by an operator), a master not ready,
#      kubeha_endpoint without port
#   3. the real run converts (report written, every kubeconfig on its planned server)
#   3a. every pin planted on the bed found before the conversion, none left after (scripts/pins_check.py)
#   4. a second run reports changed=0 on every host
#   4d. a pin kubeha does not fix fails the run at its verdict, named; accepted by name, it passes
#  0. (layout pinned) the negative control of 4c: master 1 frozen for 2 min on the unconverted bed
#     breaks the cluster (testbed/freeze.py --expect break)
#  4a. the failover drill (testbed/drill.sh: playbooks/drill.yml and molecule/shared/verify.yml)
#  4c. whole-host loss: master 1 frozen (docker pause) for 2 min, the cluster keeps working through
#     the endpoint, then everything returns (testbed/freeze.py --expect survive)
#  4b. with kubeha_lb_haproxy_host, a master that an interrupted run left drained is put back by the
#      next run (dry run: reported, not changed)
#   5. rollback returns every file byte for byte and every ConfigMap's data, and removes the module
#      cache (present on every node after 3.; no run fell back to Ansible's copy-per-call path)
#   6. (kubespray's layouts) the kubespray post-upgrade hook, included as kubespray does, converts; rollback again
#  6v. (layout novip) the hook with kubeha_vip_provision refused until convert.yml --tags vip provisioned
#      the VIP (which moves no client); then it converts through it; rollback again
#   7. (kubespray's layouts) legacy group names (kube-master, kube-node, k8s-cluster) convert; rollback again. Layout
#      kubespray: that run also removes the workers' local nginx proxy (kubeha_remove_local_proxy),
#      workers stay Ready, and the rollback brings the proxy back
set -euo pipefail
cd "$(dirname "$0")/.."
layout=${1:-${LAYOUT:-pinned}}
tier=${KUBEHA_TEST_TIER:-full}
[[ $tier == core || $tier == full ]] || { echo "test-playbooks: KUBEHA_TEST_TIER is core or full, not '$tier'" >&2; exit 2; }
source testbed/layout.sh
inv=${INVENTORY:-$(layout_inventory "$layout" test-playbooks)}
[[ $layout == kubespray ]] && inv=${INVENTORY:-testbed/inventory/kubespray.yml}
legacy_inv=${LEGACY_INVENTORY:-testbed/inventory/$layout-legacy.ini}
export ANSIBLE_CONFIG=$PWD/ansible.cfg PATH="$PWD/.venv/bin:$PATH"
[[ -n ${KUBEHA_COLLECTIONS_PATH:-} ]] && export ANSIBLE_COLLECTIONS_PATH=$KUBEHA_COLLECTIONS_PATH
logs=reports/test-playbooks/$layout
mkdir -p "$logs"
pass=0 failed=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; failed=$((failed + 1)); }
ap() { local log=$1; shift; ansible-playbook "$@" >"$logs/$log.log" 2>&1; }
snap() { ansible-playbook -i "$inv" playbooks/tests/snapshot.yml -e "snapshot_name=$layout-$1" >"$logs/snapshot-$1.log" 2>&1; }
# compare two snapshots: mode files|cm-rv|cm-data|all
same() {
    python3 - "reports/snapshots/$layout-$1.json" "reports/snapshots/$layout-$2.json" "$3" <<'PY'
import json, sys
a, b, mode = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
diff = []
if mode in ("files", "all", "files+data"):
    for h in sorted(set(a["files"]) | set(b["files"])):
        fa, fb = a["files"].get(h, {}), b["files"].get(h, {})
        for p in sorted(set(fa) | set(fb)):
            if fa.get(p) != fb.get(p):
                diff.append(f"{h}:{p} {fa.get(p, 'absent')[:12]} -> {fb.get(p, 'absent')[:12]}")
for cm in sorted(a["configmaps"]):
    ca, cb = a["configmaps"][cm], b["configmaps"].get(cm, {})
    if mode == "all" and ca.get("resourceVersion") != cb.get("resourceVersion"):
        diff.append(f"configmap {cm} resourceVersion {ca.get('resourceVersion')} -> {cb.get('resourceVersion')}")
    if ca.get("data_sha256") != cb.get("data_sha256"):
        diff.append(f"configmap {cm} data changed")
for w in sorted(set(a.get("workloads", {})) | set(b.get("workloads", {}))):
    wa, wb = a.get("workloads", {}).get(w, {}), b.get("workloads", {}).get(w, {})
    if mode == "all" and wa.get("generation") != wb.get("generation"):
        diff.append(f"{w} generation {wa.get('generation')} -> {wb.get('generation')}")
    if wa.get("spec_sha256") != wb.get("spec_sha256"):
        diff.append(f"{w} spec changed")
print("\n".join(diff))
sys.exit(1 if diff else 0)
PY
}
recap_changed() { awk '/PLAY RECAP/ {r=1; next} r && /changed=/ {for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {split($i, a, "="); s += a[2]}} END {print s + 0}' "$1"; }
haproxy() { docker exec kubeha-lb python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); s.sendall(sys.argv[1].encode()+b'\n'); print(s.recv(65536).decode().strip())" "$1"; }

# kubeha's action plugin keeps each module binary on the host (kubeha_module_cache_dir); a run that
# silently fell back to Ansible's copy-per-call path would still pass every other check
nodes=(kubeha-master1 kubeha-master2 kubeha-master3 kubeha-worker1 kubeha-worker2)
cache_dir=/var/lib/kubeha/modules
module_cache() {  # present|absent: the cache on every node (root 0700, files <module>-<sha256>)
    local h out bad=""
    for h in "${nodes[@]}"; do
        out=$(docker exec "$h" sh -c "[ -d $cache_dir ] || { echo absent; exit; }; stat -c '%U %a' $cache_dir; ls $cache_dir")
        if [[ $1 == absent ]]; then
            [[ $out == absent ]] || bad+=" $h:present"
        elif [[ $out == absent || $(head -1 <<<"$out") != "root 700" ]] || ! tail -n +2 <<<"$out" | grep -Eq '^[a-z_]+-[0-9a-f]{64}$' \
            || tail -n +2 <<<"$out" | grep -Evq '^[a-z_]+-[0-9a-f]{64}$'; then
            bad+=" $h:$(tr '\n' ' ' <<<"$out")"
        fi
    done
    [[ -z $bad ]] || { echo "$bad"; return 1; }
}

cert_dir=ssl; [[ $layout == kubeadm* ]] && cert_dir=pki
echo "== test bed $layout, inventory $inv, tier $tier"
freeze() {  # expect [freeze.py options]: testbed/freeze.py's verdict, its table in the log
    local expect=$1 out; shift
    if out=$(.venv/bin/python testbed/freeze.py "$layout" --expect "$expect" "$@" 2>&1); then
        ok "$(tail -1 <<<"$out")"
    else
        ko "$(tail -1 <<<"$out")"
    fi
    echo "$out" >"$logs/freeze-$expect.log"
    grep -E '^  [a-z-]+ +(ok|FAIL)' <<<"$out" | cut -c1-220
}
# 0. on an unconverted pinned bed (every client on master 1), losing master 1 must break it: the
#    freeze test of 4c can fail. Its certificates do not carry the VIP yet: verified for `kubernetes`.
if [[ $layout == pinned ]]; then
    freeze break --server-name kubernetes
fi
snap before

# 1. dry run
if ap check -i "$inv" playbooks/convert.yml --check --diff; then
    snap after-check
    if d=$(same before after-check all); then ok "dry run changed no file and no ConfigMap resourceVersion"; else ko "dry run changed: $d"; fi
    n=$(recap_changed "$logs/check.log")
    diffs=$(grep -c '^+++ after: ' "$logs/check.log" || true)
    # the kube-proxy roll's task reports the roll it would make (changed) in check mode
    if ((n > 0 && diffs > 0)) && grep -A1 -F 'Kube-proxy | roll node by node' "$logs/check.log" | grep -q '^changed: '; then
        ok "dry run lists the changes ($n changed tasks, $diffs file/ConfigMap diffs, the kube-proxy roll; $logs/check.log)"
    else
        ko "dry run did not list the changes (changed=$n, diffs=$diffs)"
    fi
else
    ko "dry run failed (see $logs/check.log)"
fi

if [[ $tier == full ]]; then
# 2. preflight refusals
refused() {  # name, expected message regex, ansible-playbook args...: the run is refused with that message
    local name=$1 re=$2; shift 2
    if ap "refuse-$name" -i "$inv" playbooks/convert.yml "$@"; then
        ko "refusal $name: the run succeeded"; return 1
    # (the log flattened: Ansible's YAML output wraps a long message across lines)
    elif flat=$(tr -s '\n ' '  ' <"$logs/refuse-$name.log") && grep -Eq "$re" <<<"$flat" \
        && grep -q "preflight refused" "$logs/refuse-$name.log"; then
        refusal_msg=$(grep -Eo "$re" <<<"$flat" | head -1 || true)
    else
        ko "refusal $name: no message matching /$re/ (see $logs/refuse-$name.log)"; return 1
    fi
}
unchanged() {  # name: nothing changed since the start (files, ConfigMaps' resourceVersions)
    local name=$1 d
    snap "after-refuse-$name"
    if d=$(same before "after-refuse-$name" all); then ok "refusal $name: '$refusal_msg', nothing changed"
    else ko "refusal $name changed: $d"; fi
}
refuse() { refused "$@" && unchanged "$1" || true; }  # a failed refusal is counted, the rest still runs
if [[ $layout == kubeadm-dns ]]; then
# kubeha_endpoint_hosts_address: a line that maps another name with the endpoint's is not repointed
docker exec kubeha-worker2 sh -c "sed 's/[[:space:]]cluster-endpoint\$/ cluster-endpoint api-alias/' /etc/hosts >/tmp/hosts && cat /tmp/hosts >/etc/hosts"
hs=0; refused hosts-shared-line 'maps\s+cluster-endpoint,\s+api-alias\s+to\s+172.30.0.11:\s+repointing\s+it' || hs=1
docker exec kubeha-worker2 sh -c "sed 's/ cluster-endpoint api-alias\$/\tcluster-endpoint/' /etc/hosts >/tmp/hosts && cat /tmp/hosts >/etc/hosts"
((hs == 0)) && unchanged hosts-shared-line
refuse hosts-address-endpoint 'is\s+an\s+address,\s+not\s+a\s+name:\s+there\s+is\s+no\s+/etc/hosts\s+line' -e kubeha_endpoint=172.30.0.10:6443
fi
if [[ $layout == novip ]]; then
# kubeha_vip_provision (issue #20): each bad input a refusal before any change. A VIP already in use
# (worker 2 answers ARP for it)
docker exec kubeha-worker2 ip addr add 172.30.0.10/32 dev eth0
vu=0; refused vip-in-use 'the\s+VIP\s+172.30.0.10\s+is\s+in\s+use:\s+[0-9a-f:]+\s+answered\s+ARP' || vu=1
docker exec kubeha-worker2 ip addr del 172.30.0.10/32 dev eth0
((vu == 0)) && unchanged vip-in-use
refuse vip-outside-subnet 'the\s+VIP\s+10.99.0.10\s+cannot\s+be\s+used\s+on\s+this\s+master' \
    -e '{"loadbalancer_apiserver": {"address": "10.99.0.10", "port": 8443}}' -e apiserver_loadbalancer_domain_name=10.99.0.10
# the port taken on master 2
docker exec -d kubeha-master2 python3 -m http.server 8443
sleep 2
pt=0; refused vip-port-taken 'port\s+8443\s+is\s+taken\s+on\s+this\s+master\s+by\s+python3' || pt=1
docker exec kubeha-master2 pkill -f 'http.server 8443' || true
((pt == 0)) && unchanged vip-port-taken
# a VRRP router id clash: a real keepalived on worker 2 advertises router id 10 (kubeha's default:
# the VIP's last octet) for another address, from the nodes' local package source
docker exec kubeha-worker2 sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived >/dev/null
    printf "vrrp_instance other {\n state MASTER\n interface eth0\n virtual_router_id 10\n priority 100\n advert_int 1\n virtual_ipaddress {\n 172.30.0.99/32\n }\n}\n" >/etc/keepalived/keepalived.conf
    systemctl restart keepalived'
sleep 3
vc=0; refused vrrp-id-clash 'VRRP\s+router\s+id\s+10\s+is\s+in\s+use\s+on\s+the\s+segment:\s+172.30.0.22\s+advertises' || vc=1
docker exec kubeha-worker2 sh -c 'systemctl stop keepalived; DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove keepalived >/dev/null; rm -rf /etc/keepalived'
((vc == 0)) && unchanged vrrp-id-clash
# keepalived missing and no package source (master 3's only source, the local repository, removed)
src=$(docker exec kubeha-master3 sh -c 'ls /etc/apt/sources.list.d/*.list | head -1')
docker exec kubeha-master3 sh -c "mv $src /root/parked.list && apt-get update -q >/dev/null 2>&1"
ns=0; refused vip-no-package 'keepalived\s+not\s+installed,\s+and\s+the\s+package\s+manager\s+cannot\s+install\s+it' || ns=1
docker exec kubeha-master3 sh -c "mv /root/parked.list $src && apt-get update -q >/dev/null 2>&1"
((ns == 0)) && unchanged vip-no-package
refuse vip-no-password 'kubeha_vip_auth_pass\s+is\s+not\s+set' -e kubeha_vip_auth_pass=
refuse vip-apiserver-port 'the\s+endpoint\s+port\s+6443\s+is\s+the\s+port\s+of\s+the\s+apiservers' \
    -e '{"loadbalancer_apiserver": {"address": "172.30.0.10", "port": 6443}}'
fi
if [[ $layout == kubeadm* ]]; then
refuse no-endpoint "kubeha_installer is kubeadm and kubeha_endpoint is not set" -e kubeha_endpoint=
refuse unreachable "endpoint [^ ]+ is unreachable" -e kubeha_endpoint=172.30.0.10:6444
refuse no-port "is not host:port" -e kubeha_endpoint=172.30.0.10
else
refuse no-lb "does not define loadbalancer_apiserver" -e '{"loadbalancer_apiserver": {}}'
# (novip: the VIP does not exist before kubeha provisions it; nothing to reach yet)
[[ $layout == novip ]] || refuse unreachable "endpoint [^ ]+ is unreachable" \
    -e '{"loadbalancer_apiserver": {"address": "172.30.0.10", "port": 6444}}' -e apiserver_loadbalancer_domain_name=172.30.0.10
refuse no-port "is not host:port" -e '{"loadbalancer_apiserver": {}}' -e kubeha_endpoint=172.30.0.10 -e kubeha_acknowledge_no_kubespray_lb=true
fi
if [[ $layout != novip ]]; then  # the external load balancer's container
haproxy "disable server kube_apiserver/kubeha-master3" >/dev/null
refuse two-of-three "does not forward to every master: kubeha-master3"
haproxy "enable server kube_apiserver/kubeha-master3" >/dev/null
# drained by an operator (no kubeha marker): kubeha's resume step must leave it out, and refuse
haproxy "set server kube_apiserver/kubeha-master3 state drain" >/dev/null
refuse operator-drained "does not forward to every master: kubeha-master3" -e kubeha_lb_haproxy_host=kubeha-lb
haproxy "set server kube_apiserver/kubeha-master3 state ready" >/dev/null
fi
docker exec kubeha-master3 mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/kube-apiserver.yaml.parked
for _ in $(seq 30); do docker exec kubeha-master3 pgrep -x kube-apiserver >/dev/null || break; sleep 1; done
# the parked manifest is this test's own doing: compare once it is back and the apiserver ready
nr=0; refused master-not-ready "kubeha-master3: the apiserver on this master is not ready" || nr=1
docker exec kubeha-master3 mv /root/kube-apiserver.yaml.parked /etc/kubernetes/manifests/kube-apiserver.yaml
for _ in $(seq 120); do docker exec kubeha-master3 curl -sf --cacert /etc/kubernetes/$cert_dir/ca.crt https://172.30.0.13:6443/readyz >/dev/null 2>&1 && break; sleep 1; done
((nr == 0)) && unchanged master-not-ready
fi  # tier full: refusals

# 3. the conversion
if ap convert -i "$inv" playbooks/convert.yml; then
    snap converted
    ok "conversion ran ($(grep -c 'changed:' "$logs/convert.log") changed task results; report reports/kubeha-report.json)"
    grep -A40 "kubeconfig servers before and after" "$logs/convert.log" | sed -n '1,30p'
    if out=$(module_cache present); then ok "the modules ran from the module cache on every node ($cache_dir, root 0700)"
    else ko "module cache missing or wrong:$out"; fi
else
    ko "conversion failed (see $logs/convert.log)"
fi

# 3b. (layout kubeadm-dns, kubeha_endpoint_hosts_address) the endpoint's name repointed in /etc/hosts on every
#     node instead of the kubeconfigs rewritten: each node resolves it to the load balancer, every kubeconfig
#     kubeadm wrote on the name still names it, and the report says which way the clients were moved
if [[ $layout == kubeadm-dns ]]; then
    bad=""
    for h in "${nodes[@]}"; do
        r=$(docker exec "$h" getent ahostsv4 cluster-endpoint | awk 'NR == 1 {print $1}')
        s=$(docker exec "$h" awk '$1 == "server:" {print $2}' /etc/kubernetes/kubelet.conf)
        [[ $r == 172.30.0.10 && $s == https://cluster-endpoint:6443 ]] || bad+=" $h:$r,$s"
    done
    how=$(python3 -c 'import json; r = json.load(open("reports/kubeha-report.json")); print(r["clients_moved_by"], len(r["hosts_file_repointed"]))')
    if [[ -z $bad && $how == "hosts_file 5" ]] \
        && grep -q "was repointed to 172.30.0.10 in /etc/hosts on 5 node(s)" <<<"$(tr -s '\n ' '  ' <"$logs/convert.log")"; then
        ok "cluster-endpoint repointed to the load balancer in /etc/hosts on 5 nodes; kubelet.conf still names it; the report says so"
    else
        ko "hosts-file repoint:$bad (report: $how)"
    fi
fi

# 3c. (layout novip, kubeha_vip_provision) keepalived and HAProxy active and enabled on every master, the
#     VIP on exactly one, the API through it with a certificate valid for it
masters=(kubeha-master1 kubeha-master2 kubeha-master3)
vip_state() {  # per master: keepalived/haproxy active, enabled, installed; whether it holds the VIP
    local m
    for m in "${masters[@]}"; do
        docker exec "$m" sh -c 'printf "%s " "$(hostname)"; for s in keepalived haproxy; do
            printf "%s=%s/%s/%s " $s "$(systemctl is-active $s 2>/dev/null)" "$(systemctl is-enabled $s 2>/dev/null)" \
                "$(dpkg-query -W -f="\${db:Status-Status}" $s 2>/dev/null || echo absent)"; done
            ip -4 -o addr show | grep -q " 172.30.0.10/32 " && printf "VIP"; echo'
    done
}
# the state vip_state printed: keepalived and HAProxy provisioned on the 3 masters / as the image has them
vip_up() { [[ $(grep -c 'keepalived=active/enabled/installed haproxy=active/enabled/installed' <<<"$1") == 3 ]]; }
vip_removed() { [[ $(grep -c 'keepalived=inactive/[a-z-]*/absent haproxy=inactive/disabled/installed $' <<<"$1") == 3 ]]; }
if [[ $layout == novip ]]; then
    st=$(vip_state)
    holders=$(grep -c ' VIP$' <<<"$st" || true)
    ca=$(mktemp); docker exec kubeha-master1 cat /etc/kubernetes/ssl/ca.crt >"$ca"
    if vip_up "$st" && [[ $holders == 1 ]] \
        && curl -sf --max-time 5 --cacert "$ca" https://172.30.0.10:8443/readyz >/dev/null; then
        ok "VIP: keepalived and HAProxy active and enabled on the 3 masters, 172.30.0.10 on $(grep ' VIP$' <<<"$st" | cut -d' ' -f1), /readyz through it (TLS verified for the VIP)"
    else
        ko "VIP after the conversion: $(tr '\n' ';' <<<"$st")"
    fi
    rm -f "$ca"
fi

# 3a. the pins planted on the bed (testbed/README.md "Planted pins"): every one found before the
#     conversion, none left after it, the verdict honest
planted=(DaemonSet/kube-system/cilium Deployment/kube-system/cilium-operator DaemonSet/logging/promtail
         kubeha-worker1:/home/ops/.kube/config)
# kubespray's copy of admin.conf beside its inventory (a plain kubeadm inventory has none)
[[ $layout == kubeadm* ]] || planted+=("controller:$PWD/$(dirname "$inv")/artifacts/admin.conf")
if out=$(.venv/bin/python scripts/pins_check.py reports/kubeha-report.json "${planted[@]}"); then ok "pins: $out"
else ko "pins: $out"; fi

# 4. idempotence
if ap convert-again -i "$inv" playbooks/convert.yml; then
    n=$(recap_changed "$logs/convert-again.log")
    ((n == 0)) && ok "second run: changed=0 on every host" || ko "second run: changed=$n"
else
    ko "second run failed (see $logs/convert-again.log)"
fi

# 4d. the verdict: a pin kubeha does not fix (an add-on's kubeconfig naming master 1) fails the run
#     at its end, naming it; accepted by name (kubeha_accept_pins), the run passes and says so
addon=/etc/kube-router/kubeconfig
docker exec kubeha-worker2 sh -c "mkdir -p ${addon%/*} && printf 'apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://172.30.0.11:6443\n  name: kubernetes\ncontexts: []\nusers: []\n' > $addon"
if ap verdict-left -i "$inv" playbooks/convert.yml --tags verify,report; then ko "verdict: a run with $addon on kubeha-worker2 naming master 1 passed"
elif grep -q "Not HA yet: 1 place(s) still reach the API through one master" "$logs/verdict-left.log" \
    && grep -q "kubeha-worker2:$addon" "$logs/verdict-left.log"; then ok "verdict: a pin left ($addon on kubeha-worker2) fails the run, named"
else ko "verdict: the run failed without naming the pin (see $logs/verdict-left.log)"; fi
if ap verdict-accepted -i "$inv" playbooks/convert.yml --tags verify,report -e "{\"kubeha_accept_pins\": [\"kubeha-worker2:$addon\"]}" \
    && grep -q "(accepted: kubeha-worker2:$addon)" "$logs/verdict-accepted.log"; then ok "verdict: the same pin accepted by name passes, and says so"
else ko "verdict: the accepted pin did not pass (see $logs/verdict-accepted.log)"; fi
docker exec kubeha-worker2 rm -rf "${addon%/*}"

# 4a. the failover drill on the converted cluster (playbooks/drill.yml, then molecule/shared/verify.yml:
#     every client on the VIP, each master alone serving kubectl through the VIP, the Python client)
if testbed/drill.sh "$layout" >"$logs/drill.log" 2>&1; then
    ok "drill: $(grep -Eo 'drill of .* passed in [0-9]+ s' "$logs/drill.log" | tail -1) (see $logs/drill.log)"
else
    ko "drill failed (see $logs/drill.log)"
fi

# 4c. whole-host loss on the converted cluster (novip: 4e freezes the master holding the VIP instead;
#     freeze.py observes from the external load balancer's container, which novip has not)
[[ $layout == novip ]] || freeze survive

# 4e. (layout novip) the master holding the VIP frozen, again and again: the VIP moves, the endpoint
#     answers again within 5 s each time (testbed/vip_freeze.py)
if [[ $layout == novip ]]; then
    if out=$(.venv/bin/python testbed/vip_freeze.py "$layout" --rounds 5 --expect-preempt true 2>&1); then ok "$(tail -1 <<<"$out")"
    else ko "$(tail -1 <<<"$out")"; fi
    echo "$out" >"$logs/vip-freeze.log"
    grep -E '^ *[0-9]+ ' <<<"$out" | cut -c1-200 || true
fi

if [[ $tier == full && $layout != novip ]]; then
# 4b. a run killed between its drain of kubeha-master2 and the ready step (kubeha_lb_haproxy_host)
#     left it drained, with kubeha's marker on the HAProxy host: the dry run says it would put it back
#     (and changes nothing), the real run puts it back instead of refusing
marker=/var/lib/kubeha/lb-drained/kube_apiserver--kubeha-master2
admin_state() { haproxy "show servers state kube_apiserver" | awk '$4 == "kubeha-master2" {print $6 "/" $7}'; }
resumed() { grep -A4 'Resume | put a master an interrupted run left drained' "$logs/$1.log" | grep -q 'changed: \[kubeha-master2'; }
docker exec kubeha-lb bash -c "mkdir -p -m 700 ${marker%/*} && echo 'set server kube_apiserver/kubeha-master2 state drain' >$marker"
haproxy "set server kube_apiserver/kubeha-master2 state drain" >/dev/null
if ap resume-check -i "$inv" playbooks/convert.yml --check -e kubeha_lb_haproxy_host=kubeha-lb && resumed resume-check \
    && [[ $(admin_state) == */8 ]] && docker exec kubeha-lb test -f "$marker"; then
    ok "left drained by an interrupted run: the dry run reports it would put kubeha-master2 back and changes nothing ($(admin_state))"
else
    ko "left drained: dry run (see $logs/resume-check.log; op/admin state $(admin_state))"
fi
if ap resume -i "$inv" playbooks/convert.yml -e kubeha_lb_haproxy_host=kubeha-lb && resumed resume \
    && [[ $(admin_state) == 2/0 ]] && ! docker exec kubeha-lb test -e "$marker"; then
    ok "left drained by an interrupted run: the next run put kubeha-master2 back (UP, state $(admin_state)), marker gone, run converged"
else
    ko "left drained: the next run (see $logs/resume.log; op/admin state $(admin_state))"
fi
haproxy "set server kube_apiserver/kubeha-master2 state ready" >/dev/null
fi  # tier full: resume

# 5. rollback
if ap rollback -i "$inv" playbooks/rollback.yml; then
    snap rolled-back
    if d=$(same before rolled-back files+data); then ok "rollback: every file byte for byte and every ConfigMap's data as before"
    else ko "rollback left differences: $d"; fi
    if out=$(module_cache absent); then ok "rollback removed the module cache on every node"
    else ko "rollback left the module cache:$out"; fi
    # novip: keepalived purged (kubeha installed it), HAProxy disabled and stopped as the image has it, the VIP gone
    if [[ $layout == novip ]]; then
        st=$(vip_state)
        if vip_removed "$st"; then
            ok "rollback: keepalived purged, HAProxy stopped and disabled again, the VIP gone on every master"
        else
            ko "rollback left the VIP's parts: $(tr '\n' ';' <<<"$st")"
        fi
    fi
else
    ko "rollback failed (see $logs/rollback.log)"
fi

if [[ $tier == full && $layout == novip ]]; then
# 6v. the kubespray hook with kubeha_vip_provision: refused until the VIP is provisioned (nothing
#     changed); convert.yml --tags vip provisions it and moves no client (only /etc/haproxy and
#     /etc/keepalived change); the hook then converts through it; the rollback returns to the start
vip_hook_refused() { grep -q 'have no keepalived and HAProxy from kubeha' <(tr -s '\n ' '  ' <"$logs/hook-novip.log"); }
# (compared with a snapshot of its own: the conversion and rollback above moved resourceVersions)
snap before-hook-novip
if ! ap hook-novip -i "$inv" playbooks/tests/kubespray_hook.yml && vip_hook_refused && snap after-hook-novip \
    && d=$(same before-hook-novip after-hook-novip all); then
    ok "hook with kubeha_vip_provision before the VIP exists: refused (convert.yml --tags vip first), nothing changed"
else
    ko "hook with kubeha_vip_provision before the VIP exists: not refused as expected (see $logs/hook-novip.log) ${d:-}"
fi
if ap vip-only -i "$inv" playbooks/convert.yml --tags vip && snap after-vip-only; then
    d=$(same before after-vip-only files | grep -Ev '^kubeha-master[0-9]:/etc/(haproxy|keepalived)/' || true)
    if [[ -z $d ]] && vip_up "$(vip_state)"; then
        ok "convert.yml --tags vip: keepalived and HAProxy on the 3 masters, no other file changed"
    else
        ko "convert.yml --tags vip changed more than the VIP's parts: $d"
    fi
else
    ko "convert.yml --tags vip failed (see $logs/vip-only.log)"
fi
if ap hook -i "$inv" playbooks/tests/kubespray_hook.yml && ap hook-verify -i "$inv" playbooks/convert.yml --tags verify; then
    ok "kubespray post-upgrade hook converted the cluster through the provisioned VIP (verify passed)"
else
    ko "kubespray hook through the provisioned VIP (see $logs/hook.log, $logs/hook-verify.log)"
fi
ap rollback-hook -i "$inv" playbooks/rollback.yml && snap rolled-back-hook && d=$(same before rolled-back-hook files+data) \
    && vip_removed "$(vip_state)" \
    && ok "rollback after the hook: back to the start, the VIP gone" || ko "rollback after the hook: ${d:-failed}"
fi  # tier full (novip): hook

if [[ $tier == full && $layout != kubeadm* && $layout != novip ]]; then
# 6. kubespray hook
if ap hook -i "$inv" playbooks/tests/kubespray_hook.yml; then
    if ap hook-verify -i "$inv" playbooks/convert.yml --tags verify; then ok "kubespray post-upgrade hook converted the cluster"
    else ko "after the hook, verify failed (see $logs/hook-verify.log)"; fi
else
    ko "kubespray hook failed (see $logs/hook.log)"
fi
ap rollback-hook -i "$inv" playbooks/rollback.yml && snap rolled-back-hook && d=$(same before rolled-back-hook files+data) \
    && ok "rollback after the hook: back to the start" || ko "rollback after the hook: ${d:-failed}"

# 7. legacy group names; on a layout whose workers run kubespray's local nginx proxy, the same run
#    also removes it (kubeha_remove_local_proxy) and the rollback must bring it back
workers=(kubeha-worker1 kubeha-worker2)
lp=()
# (KUBEHA_TEST_LOCAL_PROXY=0 skips this part)
if [[ ${KUBEHA_TEST_LOCAL_PROXY:-1} == 1 ]] && docker exec "${workers[0]}" test -f /etc/kubernetes/manifests/nginx-proxy.yml; then
    lp=(-e kubeha_remove_local_proxy=true)
fi
local_proxy() {  # local_proxy gone|running: every worker's nginx-proxy manifest, nginx process and localhost:6443
    local expect="present running open" w state
    [[ $1 == gone ]] && expect="absent stopped closed"
    for w in "${workers[@]}"; do
        for _ in $(seq 60); do
            state=$(docker exec "$w" bash -c 'm=absent; [[ -f /etc/kubernetes/manifests/nginx-proxy.yml ]] && m=present
                p=stopped; pgrep -x nginx >/dev/null && p=running
                l=closed; (exec 3<>/dev/tcp/127.0.0.1/6443) 2>/dev/null && l=open
                echo "$m $p $l"')
            [[ $state == "$expect" ]] && break
            sleep 1
        done
        echo "$w: manifest/nginx/localhost:6443 = $state"
        [[ $state == "$expect" ]] || return 1
    done
}
workers_ready() {
    docker exec kubeha-master1 kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes "${workers[@]}" \
        -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}'
}
if [[ -f $legacy_inv ]]; then
    if ap legacy -i "$legacy_inv" playbooks/convert.yml "${lp[@]}"; then ok "legacy group names: converted"
    else ko "legacy group names (see $logs/legacy.log)"; fi
    if ((${#lp[@]})); then
        sleep 15  # a kubelet that lost its apiserver goes NotReady after 40 s; this must not happen here
        r=$(workers_ready)
        if out=$(local_proxy gone) && [[ $r != *=False* && $r != *=Unknown* && -n $r ]]; then
            ok "kubeha_remove_local_proxy: local nginx proxy gone from every worker, workers Ready ($r)"
        else ko "kubeha_remove_local_proxy: $out; nodes: $r"; fi
    fi
    ap rollback-legacy -i "$legacy_inv" playbooks/rollback.yml && snap rolled-back-legacy \
        && d=$(same before rolled-back-legacy files+data) && ok "rollback (legacy inventory): back to the start" \
        || ko "rollback (legacy inventory): ${d:-failed}"
    if ((${#lp[@]})); then
        if out=$(local_proxy running); then ok "rollback brought the local nginx proxy back on every worker"
        else ko "rollback did not bring the local nginx proxy back: $out"; fi
    fi
else
    ko "legacy inventory $legacy_inv missing"
fi

fi  # tier full (kubespray's layouts): hook and legacy inventory

# no run of this script fell back to Ansible's normal path for binary modules (the plugin warns when it does)
if fell_back=$(grep -l "kubeha fast path not used" "$logs"/*.log); then
    ko "kubeha modules fell back to Ansible's copy-per-call path in: $fell_back"
else
    ok "no kubeha module call fell back to Ansible's copy-per-call path ($(ls "$logs"/*.log | wc -l) logs)"
fi

echo "test-playbooks $layout: $pass passed, $failed failed (logs in $logs)"
((failed == 0))
