#!/usr/bin/env bash
# Prove that the release module binaries start and work on an old host: Debian bullseye
# (glibc 2.31, OpenSSL 1.1), as kubespray supports. The image is the test bed's
# kubeha-bullseye:<recipe hash> (testbed/images/build.sh bullseye: debootstrap minbase + docker
# import, cached); the binaries come from scripts/build-modules.sh (static OpenSSL, glibc 2.17).
#
# Fixtures are made here with the openssl CLI in kubeadm's formats (CA, apiserver serving cert
# with kubeadm's extensions, admin client cert, kubeadm-format kubeconfig, v1beta4 kubeadm
# config). In the container (no network) every module runs exactly as Ansible runs it
# (argv[1] = JSON args file):
#   control_plane_info (empty root and fixture root), kubeadm_config and kubeconfig_server
#   (check, real, second run), apiserver_cert (issues a new cert: the static OpenSSL signs inside
#   bullseye; bullseye's own openssl 1.1 verifies it), ha_verify and cluster_configmaps against
#   `openssl s_server` inside the container (TLS verified against the CA; a wrong CA must be
#   refused), component_restart (no such process: a clean failure), vip_probe (loopback: the address
#   local, s_server's port listed with its process; no raw socket).
# Every result must be one JSON object with the expected outcome and no key material.
# With `aarch64`, the same in an arm64 bullseye (testbed/images/build.sh bullseye-arm64, run by
# Debian's qemu-user-static through binfmt_misc) with the aarch64 binaries
# (scripts/build-modules.sh aarch64, <collection>/bin/aarch64): every module starts and answers,
# and the certificate apiserver_cert issues there is verified by that bullseye's own openssl.
# Usage: scripts/test-bullseye.sh [x86_64|aarch64]   (exit 0 = all expectations met)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

MODULES=(control_plane_info kubeadm_config apiserver_cert kubeconfig_server component_restart cluster_configmaps cluster_workloads ha_verify vip_probe)
ARCH=${1:-x86_64}
case $ARCH in
    x86_64) flavour=bullseye hash_field=4
            MODULES_DIR=$repo/ansible/ansible_collections/kubeha/control_plane/plugins/modules ;;
    aarch64) flavour=bullseye-arm64 hash_field=6
             MODULES_DIR=$repo/ansible/ansible_collections/kubeha/control_plane/bin/aarch64 ;;
    *) echo "usage: $0 [x86_64|aarch64]" >&2; exit 2 ;;
esac

testbed/images/build.sh "$flavour"
image=kubeha-$flavour:$(testbed/images/build.sh hash | awk -v f="$hash_field" '{print $f}')
docker image inspect "$image" >/dev/null

scripts/build-modules.sh "$ARCH" >/dev/null
for m in "${MODULES[@]}"; do
    [[ -x $MODULES_DIR/$m ]] || { echo "test-bullseye: $MODULES_DIR/$m missing after the build" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/kubeha-bullseye.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{pki,other,args,out,empty/etc/kubernetes,root/etc/kubernetes,root/root/.kube}

# --- fixtures (host openssl) -----------------------------------------------------------------
pki=$work/pki
ossl() { openssl "$@" 2>/dev/null; }
ossl genrsa -traditional -out "$pki/ca.key" 2048
ossl req -x509 -new -key "$pki/ca.key" -subj /CN=kubernetes -days 3650 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign \
    -addext subjectKeyIdentifier=hash -out "$pki/ca.crt"
ossl genrsa -traditional -out "$work/other/ca.key" 2048
ossl req -x509 -new -key "$work/other/ca.key" -subj /CN=kubernetes -days 3650 -out "$work/other/ca.crt"
leaf() {   # name subject extensions
    ossl genrsa -traditional -out "$pki/$1.key" 2048
    ossl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
    printf '%b' "$3" >"$pki/$1.ext"
    ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 365 -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
    rm -f "$pki/$1.csr" "$pki/$1.ext"
}
leaf apiserver /CN=kube-apiserver "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectAltName=DNS:master1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:10.233.0.1,IP:172.30.0.11,IP:127.0.0.1\n"
leaf admin "/O=system:masters/CN=kubernetes-admin" "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n"
chmod 0600 "$pki"/*.key
b64() { base64 -w0 "$1"; }
kube=$work/root/etc/kubernetes
cp -a "$pki" "$kube/ssl"
rm -f "$kube/ssl/admin.crt" "$kube/ssl/admin.key"
cat >"$kube/admin.conf" <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b64 "$pki/ca.crt")
    server: https://172.30.0.11:6443
  name: cluster.local
contexts:
- context:
    cluster: cluster.local
    user: kubernetes-admin
  name: kubernetes-admin@cluster.local
current-context: kubernetes-admin@cluster.local
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
EOF
chmod 0600 "$kube/admin.conf"
cp -p "$kube/admin.conf" "$work/root/root/.kube/config"
cat >"$kube/kubeadm-config.yaml" <<'EOF'
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "172.30.0.11"
  bindPort: 6443
nodeRegistration:
  name: "master1"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: cluster.local
# kubespray: the first master's address until a load balancer is defined
controlPlaneEndpoint: "172.30.0.11:6443"
networking:
  dnsDomain: cluster.local
  serviceSubnet: "10.233.0.0/18"
apiServer:
  certSANs:
    - "kubernetes"
    - "172.30.0.11"
EOF
cp "$kube/kubeadm-config.yaml" "$work/kubeadm-config.orig.yaml"

# --- module arguments (as Ansible writes them) -------------------------------------------------
ansible_keys='"_ansible_diff": true, "_ansible_verbosity": 0, "_ansible_no_log": false, "_ansible_tmpdir": null'
args() {   # name check_mode json-options-body
    printf '{%s, "_ansible_check_mode": %s, %s}\n' "$3" "$2" "$ansible_keys" >"$work/args/$1.json"
}
k=/work/root/etc/kubernetes
args info_empty false '"host_root": "/work/empty"'
args info_root false '"host_root": "/work/root"'
args kubeadm_check true "\"path\": \"$k/kubeadm-config.yaml\", \"control_plane_endpoint\": \"172.30.0.10:6443\", \"cert_sans\": [\"172.30.0.10\", \"lb.kubeha.test\"]"
cp "$work/args/kubeadm_check.json" "$work/args/kubeadm_real.json"
sed -i 's/"_ansible_check_mode": true/"_ansible_check_mode": false/' "$work/args/kubeadm_real.json"
cp "$work/args/kubeadm_real.json" "$work/args/kubeadm_again.json"
args kubeconfig_real false "\"path\": \"$k/admin.conf\", \"server\": \"https://172.30.0.10:6443\""
cp "$work/args/kubeconfig_real.json" "$work/args/kubeconfig_again.json"
args cert_real false "\"cert_path\": \"$k/ssl/apiserver.crt\", \"key_path\": \"$k/ssl/apiserver.key\", \"ca_cert_path\": \"$k/ssl/ca.crt\", \"ca_key_path\": \"$k/ssl/ca.key\", \"sans\": [\"172.30.0.10\", \"lb.kubeha.test\"]"
cp "$work/args/cert_real.json" "$work/args/cert_again.json"
args verify_tls false "\"endpoint\": \"127.0.0.1:16443\", \"ca_cert_path\": \"$k/ssl/ca.crt\", \"kubeconfig\": \"/work/root/root/.kube/config\", \"timeout\": 5"
args verify_wrong_ca false "\"endpoint\": \"127.0.0.1:16443\", \"ca_cert_path\": \"/work/other/ca.crt\", \"kubeconfig\": \"/work/root/root/.kube/config\", \"timeout\": 5"
args configmaps_tls true "\"kubeconfig\": \"/work/root/root/.kube/config\", \"api_server\": \"https://127.0.0.1:16443\", \"control_plane_endpoint\": \"172.30.0.10:6443\", \"timeout\": 5"
args workloads_tls true "\"kubeconfig\": \"/work/workloads.conf\", \"workloads\": [\"DaemonSet/kube-system/cilium\"], \"masters\": [\"172.30.0.11\"], \"control_plane_endpoint\": \"172.30.0.10:6443\", \"timeout\": 5"
args restart_absent true '"name": "kube-scheduler", "timeout": 5'
args probe_local true '"address": "127.0.0.1", "listen": 0, "ports": [16443]'

# --- run in bullseye -----------------------------------------------------------------------------
cat >"$work/run.sh" <<'EOF'
set -u
cd /work
{ uname -m; ldd --version | head -1; dpkg-query -W -f '${Package} ${Version}\n' libc6 libssl1.1; openssl version; } >out/versions.txt
run() { /modules/"$1" "args/$2.json" >"out/$2.json" 2>"out/$2.stderr"; }
run control_plane_info info_empty
run kubeadm_config kubeadm_check
run kubeadm_config kubeadm_real
run kubeadm_config kubeadm_again
run kubeconfig_server kubeconfig_real
run kubeconfig_server kubeconfig_again
run apiserver_cert cert_real
openssl verify -CAfile root/etc/kubernetes/ssl/ca.crt root/etc/kubernetes/ssl/apiserver.crt >out/cert_verify.txt 2>&1
openssl x509 -noout -text -in root/etc/kubernetes/ssl/apiserver.crt | grep -A1 'Subject Alternative Name' | tail -1 >out/cert_sans.txt
run apiserver_cert cert_again
run control_plane_info info_root
openssl s_server -quiet -www -accept 16443 -cert root/etc/kubernetes/ssl/apiserver.crt \
    -key root/etc/kubernetes/ssl/apiserver.key >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/16443) 2>/dev/null && break; sleep 0.1; done
run ha_verify verify_tls
run ha_verify verify_wrong_ca
run cluster_configmaps configmaps_tls
sed 's#server: https://[^ ]*#server: https://127.0.0.1:16443#' root/root/.kube/config >workloads.conf
run cluster_workloads workloads_tls
run vip_probe probe_local
kill "$server"
run component_restart restart_absent
exit 0   # module failures are judged from their JSON below, not from exit codes
EOF
start=$SECONDS
# No --platform: this engine records an imported image as amd64 whatever `docker import
# --platform` says, and refuses to run it as linux/arm64; the kernel's binfmt_misc runs the arm64
# programs through qemu all the same, and the expectations check `uname -m` inside.
docker run --rm --network none -v "$MODULES_DIR:/modules:ro" -v "$work:/work" "$image" bash /work/run.sh
echo "test-bullseye: modules ran in $image in $((SECONDS - start)) s"
sed 's/^/test-bullseye: /' "$work/out/versions.txt"

# --- expectations --------------------------------------------------------------------------------
python3 - "$work" "$ARCH" <<'EOF'
import difflib, json, pathlib, sys
work = pathlib.Path(sys.argv[1])
out = work / "out"
problems = []
machine = (out / "versions.txt").read_text().splitlines()[0].strip()
if machine != sys.argv[2]:
    problems.append(f"the modules ran on {machine}, not {sys.argv[2]}")

def result(name):
    text = (out / f"{name}.json").read_text()
    if "PRIVATE KEY" in text or "LS0tLS1CRUdJTi" in text:
        problems.append(f"{name}: key material in the output")
    try:
        lines = [l for l in text.splitlines() if l.strip()]
        assert len(lines) == 1
        return json.loads(lines[0])
    except Exception:
        problems.append(f"{name}: stdout is not one JSON object: {text[:300]!r}")
        return {}

def expect(name, cond, what):
    r = result(name)
    ok = bool(r) and cond(r)
    print(f"test-bullseye: {'ok  ' if ok else 'FAIL'} {name}: {what}")
    print(f"test-bullseye:        changed={r.get('changed')} failed={r.get('failed', False)} msg={str(r.get('msg'))[:150]}")
    if not ok:
        problems.append(f"{name}: expected {what}, got {json.dumps(r)[:600]}")

ok = lambda r: not r.get("failed")
expect("info_empty", lambda r: ok(r) and r["changed"] is False and r["kubeadm_config"]["present"] is False,
       "read-only facts of an empty root")
expect("info_root", lambda r: ok(r) and r["apiserver_cert"]["chains_to_ca"] is True
       and r["apiserver_cert"]["matches_key"] is True and "172.30.0.10" in r["apiserver_cert"]["ip_sans"]
       and r["servers"]["admin"] == "https://172.30.0.10:6443",
       "facts after the conversion: the new cert chains to the CA and matches its key")
expect("kubeadm_check", lambda r: ok(r) and r["changed"] is True and "diff" in r, "check mode predicts a change")
expect("kubeadm_real", lambda r: ok(r) and r["changed"] is True and r.get("backup_file"), "real run changes the file, with a backup")
expect("kubeadm_again", lambda r: ok(r) and r["changed"] is False, "second run: no change")
expect("kubeconfig_real", lambda r: ok(r) and r["changed"] is True and r["server_before"] == "https://172.30.0.11:6443",
       "server rewritten")
expect("kubeconfig_again", lambda r: ok(r) and r["changed"] is False, "second run: no change")
expect("cert_real", lambda r: ok(r) and r["changed"] is True and r["missing_sans"] == ["172.30.0.10", "lb.kubeha.test"]
       and r.get("backup_key_file"), "a new certificate issued with the static OpenSSL")
expect("cert_again", lambda r: ok(r) and r["changed"] is False, "second run: the new cert covers the SANs")
expect("verify_tls", lambda r: r.get("failed") is True and "HTTP 200" in r["msg"] and "/readyz" in r["msg"],
       "TLS to openssl s_server verified against the cluster CA (s_server's status page is no /readyz 'ok')")
expect("verify_wrong_ca", lambda r: r.get("failed") is True and "verif" in r["msg"],
       "a server certificate from another CA is refused")
expect("configmaps_tls", lambda r: r.get("failed") is True and "127.0.0.1:16443" in r["msg"] and "TLS" not in r["msg"],
       "verified mutual-TLS GET reaches the server (whose answer is no ConfigMap)")
expect("workloads_tls", lambda r: r.get("failed") is True and "127.0.0.1:16443" in r["msg"] and "TLS" not in r["msg"],
       "verified mutual-TLS GET of the DaemonSet reaches the server (whose answer is no DaemonSet)")
expect("probe_local", lambda r: ok(r) and r["changed"] is False and r["address_local"] is True
       and r["interface"]["name"] == "lo" and r["arp"]["probes"] == 0
       and len(r["ports"]["16443"]) >= 1 and all(l["process"] == "openssl" for l in r["ports"]["16443"]),
       "loopback address reported local, s_server's listener found with its process")
expect("restart_absent", lambda r: r.get("failed") is True and "no running kube-scheduler process" in r["msg"],
       "no kube-scheduler process: a clean failure")

verify = (out / "cert_verify.txt").read_text().strip()
print(f"test-bullseye: openssl 1.1 verify of the issued cert: {verify}")
if not verify.endswith(": OK"):
    problems.append(f"bullseye openssl does not verify the issued cert: {verify}")
sans = (out / "cert_sans.txt").read_text().strip()
print(f"test-bullseye: SANs of the issued cert: {sans}")
for want in ("IP Address:172.30.0.10", "DNS:lb.kubeha.test", "DNS:kubernetes", "IP Address:10.233.0.1"):
    if want not in sans:
        problems.append(f"issued cert lacks {want}: {sans}")
before = (work / "kubeadm-config.orig.yaml").read_text().splitlines()
after = (work / "root/etc/kubernetes/kubeadm-config.yaml").read_text().splitlines()
changes = [l for l in difflib.unified_diff(before, after, lineterm="", n=0) if l[:1] in "+-" and l[:3] not in ("+++", "---")]
want = ['-controlPlaneEndpoint: "172.30.0.11:6443"', '+controlPlaneEndpoint: "172.30.0.10:6443"',
        '+    - "172.30.0.10"', '+    - "lb.kubeha.test"']
if sorted(changes) != sorted(want):
    problems.append(f"kubeadm-config.yaml line diff: {changes}")
if problems:
    print("test-bullseye: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print("test-bullseye: all module binaries work on bullseye")
EOF
