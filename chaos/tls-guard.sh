#!/usr/bin/env bash
# Fails (exit 1) when any code path of kubeha could disable TLS verification: scans src/, ansible/,
# playbooks/, testbed/, chaos/, tests/, bench/, molecule/, scripts/ (text files; the release module
# binaries are skipped) for the ways Rust/OpenSSL, Python, Ansible and kubeconfigs turn it off.
# Self-test first: each pattern must be caught in a scratch file, so the guard cannot pass by
# matching nothing.  Usage: chaos/tls-guard.sh   (run by scripts/test-all.sh and make chaos)
set -euo pipefail
cd "$(dirname "$0")/.."
patterns=(
    'SslVerifyMode::NONE'
    'verify_none'
    'CERT_NONE'
    '_create_unverified_context'
    'danger_accept_invalid'
    'insecure-skip-tls-verify:[[:space:]]*(true|yes|"true")'
    'insecure-skip-tls-verify=(true|yes)'
    '--insecure-skip-tls-verify([[:space:]]|$|=true)'
    'InsecureSkipVerify:[[:space:]]*true'
    'validate_certs:[[:space:]]*(false|no|False)'
    'validate_certs=(false|no|False)'
    'check_hostname[[:space:]]*=[[:space:]]*False'
    'verify[[:space:]]*=[[:space:]]*False'
)
regex=$(IFS='|'; echo "${patterns[*]}")
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
samples=('x.set_verify(SslVerifyMode::NONE);' 'ctx.verify_none()' 'ssl.CERT_NONE' 'ssl._create_unverified_context()'
         '.danger_accept_invalid_certs(true)' '    insecure-skip-tls-verify: true' 'kubectl --insecure-skip-tls-verify=true'
         'kubectl --insecure-skip-tls-verify get po' 'InsecureSkipVerify: true' '  validate_certs: false'
         'uri validate_certs=no' 'ctx.check_hostname = False' 'requests.get(u, verify=False)')
for s in "${samples[@]}"; do
    printf '%s\n' "$s" > "$scratch/sample"
    grep -qE -- "$regex" "$scratch/sample" || { echo "tls-guard: self-test: pattern set misses: $s" >&2; exit 2; }
done
dirs=()
for d in src ansible playbooks testbed chaos tests bench molecule scripts; do [[ -d $d ]] && dirs+=("$d"); done
all_hits=$(grep -rnIE --exclude=tls-guard.sh -e "$regex" -- "${dirs[@]}" || true)
# The real-world corpus (tests/fixtures/realworld/, files nobody on kubeha wrote, see its
# SOURCES.md) keeps `insecure-skip-tls-verify` where its authors wrote it: kubeconfig_server must
# leave that line alone. Only that folder is exempt.
exempt=tests/fixtures/realworld/
hits=$(grep -v "^$exempt" <<<"$all_hits" || true)
exempted=$(grep -c "^$exempt" <<<"$all_hits" || true)
if [[ -n $hits ]]; then
    echo "tls-guard: TLS verification disabled here (never allowed):" >&2
    echo "$hits" >&2
    exit 1
fi
echo "tls-guard: no code path disables TLS verification (${#patterns[@]} patterns, ${#dirs[@]} trees, self-test ok; $exempted lines of $exempt exempt)"
