#!/usr/bin/env python3
"""The VIP holder frozen, round after round: on a bed whose masters hold the endpoint's VIP
themselves (layout novip after a conversion with kubeha_vip_provision: keepalived + HAProxy on every
master), find the master that holds the VIP, `docker pause` it (its keepalived, HAProxy and
apiserver stop at once and its peers get no reset: a host that dies), measure how long the endpoint
stays unreachable and how many requests fail while the VIP moves, thaw it, and watch where the VIP
ends up (back on the returning master = preemption, or where it moved).

    testbed/vip_freeze.py [LAYOUT] [--rounds 5] [--frozen 20] [--after 20] [--max-gap 5]
                          [--expect-preempt true|false] [--server-name auto|NAME]

The availability probe runs on this machine (the controller, on the docker network's gateway
172.30.0.1): an HTTPS GET /readyz to https://<VIP>:<port> every --interval (0.2) s, each with a
--timeout (1) s budget for connect, TLS and answer, started on schedule whatever the earlier ones
do; TLS verified against the cluster CA copied from a master, for the VIP's address when the
certificates carry it (the conversion adds it as an IP SAN), else for `kubernetes` (a SAN of every
apiserver certificate; --server-name overrides). A probe succeeds on `200 ok`. The VIP and port
default to the layout inventory's loadbalancer_apiserver (testbed/inventory/<layout>/group_vars/all).

Per round: the holder (`ip -4 -o addr` in each master container), the probe started, 2 s of
baseline, `docker pause` of the holder; during --frozen seconds the live masters are watched for
the VIP (the new holder); `docker unpause`; during --after seconds every master is watched (where
the VIP goes, and whether two held it at once); then the bed must be healthy again (`testbed/bed.py
health`, exactly one holder, the VIP answering) before the next round. Figures per round:
  unreachable  seconds from the pause (once `docker pause` returned) to the start of the first
               successful probe after it
  failed/total probes started while the holder was frozen (failures after the first success,
               e.g. HAProxy still sending connections to the frozen master's apiserver, count too;
               `steady` is when the last of them started)
  after        the holder --after seconds after the thaw, and the probes that failed meanwhile
Verdict PASS: at least 5 rounds, each with unreachable <= --max-gap (5 s) and the VIP where the
configured preemption puts it (--expect-preempt true: back on the returning master; false: still on
the new holder). JSON report: reports/vip-freeze/<layout>-preempt-<true|false>.json. The frozen
master is thawed whatever happens.
"""

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import freeze  # noqa: E402  (testbed/freeze.py: docker(), MASTERS)

ROOT = HERE.parent
MASTERS = freeze.MASTERS
CA_PATH = "/etc/kubernetes/pki/ca.crt"   # kubeadm's path; kubespray's /etc/kubernetes/pki links to ssl
MIN_ROUNDS = 5


# ---- pure parts (testbed/tests/test_vip_freeze.py) ------------------------------------------------

def holds(ip_addr_output, vip):
    """True when `ip -4 -o addr` output lists the VIP on an interface."""
    for line in ip_addr_output.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1]
            if address.split("/")[0] == vip:
                return True
    return False


def endpoint_of(layout, root=ROOT):
    """(address, port) of kubespray's loadbalancer_apiserver in the layout's inventory directory
    (testbed/inventory/<layout>/group_vars/all/*.yml), or None."""
    directory = Path(root) / "testbed" / "inventory" / layout / "group_vars" / "all"
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        lb = data.get("loadbalancer_apiserver")
        if lb and lb.get("address"):
            return str(lb["address"]), int(lb.get("port", 6443))
    return None


def round_figures(probes, t_pause, t_thaw, t_end):
    """Figures of one round from its probes ({"start", "end", "ok", ...}, seconds on one clock):
    before the pause, while frozen (pause..thaw) and after the thaw (thaw..end), by start time."""
    before = [p for p in probes if p["start"] < t_pause]
    frozen = [p for p in probes if t_pause <= p["start"] < t_thaw]
    after = [p for p in probes if t_thaw <= p["start"] < t_end]
    first_ok = next((p for p in sorted(frozen, key=lambda p: p["start"]) if p["ok"]), None)
    failed = [p for p in frozen if not p["ok"]]
    later = [p for p in failed if first_ok is not None and p["start"] > first_ok["start"]]
    return {
        "unreachable_s": None if first_ok is None else round(first_ok["start"] - t_pause, 2),
        "failed_frozen": len(failed), "probes_frozen": len(frozen),
        "failed_after_first_ok": len(later),
        # the start of the last failed probe while frozen: from the next one on, every probe passed
        "steady_s": round(max(p["start"] for p in failed) - t_pause, 2) if failed else 0.0,
        "failed_after_thaw": sum(1 for p in after if not p["ok"]), "probes_after_thaw": len(after),
        "failed_before": sum(1 for p in before if not p["ok"]), "probes_before": len(before),
    }


def expected_holder(holder, new_holder, preempt):
    """Where the VIP must be after the thaw: back on the returning master (preemption) or still on
    the master it moved to."""
    return holder if preempt else new_holder


def judge(rounds, max_gap, preempt, min_rounds=MIN_ROUNDS):
    """(ok, reasons): every round's VIP came back within max_gap and ended where preemption says,
    over at least min_rounds rounds."""
    reasons = []
    if len(rounds) < min_rounds:
        reasons.append("%d round(s), at least %d needed" % (len(rounds), min_rounds))
    for r in rounds:
        n = r["round"]
        if r.get("error"):
            reasons.append("round %d: %s" % (n, r["error"]))
            continue
        gap = r["unreachable_s"]
        if gap is None:
            reasons.append("round %d: the VIP never answered while %s was frozen" % (n, r["holder"]))
        elif gap > max_gap:
            reasons.append("round %d: unreachable %.1f s > %.1f s" % (n, gap, max_gap))
        if not r.get("new_holder"):
            reasons.append("round %d: no live master took the VIP" % n)
        want = expected_holder(r["holder"], r.get("new_holder"), preempt)
        if r.get("holder_after") != want:
            reasons.append("round %d: after the thaw the VIP is on %s, not %s (%s)" % (
                n, r.get("holder_after") or "no master", want,
                "preemption expected" if preempt else "no preemption expected"))
    return not reasons, reasons


COLUMNS = [("round", 5), ("holder", 15), ("new holder", 15), ("unreachable", 11), ("failed/total frozen", 19),
           ("steady", 7), ("holder after thaw", 17), ("failed/total after", 18)]


def short(name):
    return (name or "-").replace("kubeha-", "")


def table_header():
    return "  ".join(title.ljust(width) for title, width in COLUMNS)


def table_row(r):
    if r.get("error") and r.get("unreachable_s") is None and not r.get("probes_frozen"):
        return "%-5s  %s" % (r["round"], "ERROR: " + r["error"])
    cells = [str(r["round"]), short(r["holder"]), short(r.get("new_holder")),
             "-" if r.get("unreachable_s") is None else "%.2f s" % r["unreachable_s"],
             "%d/%d" % (r["failed_frozen"], r["probes_frozen"]),
             "%.1f s" % r["steady_s"], short(r.get("holder_after")),
             "%d/%d" % (r["failed_after_thaw"], r["probes_after_thaw"])]
    return "  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS))


# ---- the probe -----------------------------------------------------------------------------------

def readyz(address, port, context, server_name, timeout):
    """One HTTPS GET /readyz within `timeout` seconds in all: (ok, error text)."""
    deadline = time.monotonic() + timeout

    def left():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        return remaining

    try:
        with socket.create_connection((address, port), timeout=left()) as raw:
            raw.settimeout(left())
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                tls.settimeout(left())
                # HTTP/1.0: the answer ends with the connection, never chunked
                tls.sendall(b"GET /readyz HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (server_name.encode(), port))
                data = b""
                while True:
                    tls.settimeout(left())
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
    except (OSError, ssl.SSLError) as err:
        return False, "%s: %s" % (type(err).__name__, err)
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " in status + b" " and body.strip().endswith(b"ok"):
        return True, ""
    return False, (status.decode(errors="replace") + " " + body[:60].decode(errors="replace")).strip()


class Prober:
    """Probes started every `interval` seconds on a schedule, each in its own worker."""

    def __init__(self, address, port, context, server_name, interval, timeout):
        self.args = (address, port, context, server_name, timeout)
        self.interval = interval
        self.records = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=int(timeout / interval) + 4)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self):
        start = time.monotonic()
        ok, error = readyz(*self.args)
        with self.lock:
            self.records.append({"start": start, "end": time.monotonic(), "ok": ok, "error": error})

    def run(self):
        tick = time.monotonic()
        while not self.stop_event.is_set():
            self.pool.submit(self.one)
            tick += self.interval
            self.stop_event.wait(max(0.0, tick - time.monotonic()))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        with self.lock:
            return sorted(self.records, key=lambda r: r["start"])


# ---- the bed ---------------------------------------------------------------------------------------

def holders(vip, masters, paused=()):
    """The masters (not paused) whose `ip -4 -o addr` lists the VIP."""
    found = []
    for m in masters:
        if m in paused:
            continue
        proc = freeze.docker("exec", m, "ip", "-4", "-o", "addr", "show", check=False, timeout=10)
        if proc.returncode == 0 and holds(proc.stdout, vip):
            found.append(m)
    return found


def mac_of(node):
    proc = freeze.docker("exec", node, "cat", "/sys/class/net/eth0/address", check=False, timeout=10)
    return proc.stdout.strip() if proc.returncode == 0 else None


def arp_entry(vip):
    """This machine's neighbour entry for the VIP: (MAC, state)."""
    proc = subprocess.run(["ip", "neigh", "show", vip], capture_output=True, text=True, check=False)
    fields = proc.stdout.split()
    mac = fields[fields.index("lladdr") + 1] if "lladdr" in fields else None
    return mac, (fields[-1] if fields else None)


def ssl_context(ca_pem):
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def choose_server_name(address, port, context, wanted, timeout):
    """The name the probe verifies: `wanted`, or with `auto` the VIP's address when the serving
    certificate carries it as an IP SAN (after the conversion), else `kubernetes`."""
    if wanted != "auto":
        return wanted, "given"
    ok, error = readyz(address, port, context, address, timeout)
    if ok:
        return address, "the certificate carries the VIP"
    if "CERTIFICATE_VERIFY_FAILED" in error or "IP address mismatch" in error or "doesn't match" in error:
        return "kubernetes", "the certificate does not carry the VIP (%s)" % error[:100]
    raise SystemExit("vip_freeze: https://%s:%d/readyz does not answer: %s" % (address, port, error))


def healthy_again(layout, vip, masters, probe_once, budget):
    """Wait (at most `budget` s) until bed.py health passes, exactly one master holds the VIP and
    the VIP answered 5 probes in a row. Returns (ok, seconds, detail)."""
    start = time.monotonic()
    health = subprocess.run([sys.executable, str(ROOT / "testbed/bed.py"), "health", layout, "--wait", str(int(budget))],
                            cwd=ROOT, text=True, capture_output=True, check=False)
    if health.returncode != 0:
        return False, time.monotonic() - start, "bed health: " + (health.stdout.strip().splitlines() or ["?"])[-1]
    streak, held = 0, []
    while time.monotonic() - start < budget:
        held = holders(vip, masters)
        streak = streak + 1 if len(held) == 1 and probe_once() else 0
        if streak >= 5:
            return True, time.monotonic() - start, "healthy, VIP on %s" % held[0]
        time.sleep(0.2)
    return False, time.monotonic() - start, "VIP holders %s, %d good probes in a row" % (held, streak)


def one_round(n, args, vip, port, context, server_name, macs):
    record = {"round": n}
    held = holders(vip, MASTERS)
    if len(held) != 1:
        record["error"] = "the VIP is held by %s before the pause, not by one master" % (held or "no master")
        return record
    holder = held[0]
    record["holder"] = holder
    prober = Prober(vip, port, context, server_name, args.interval, args.timeout).start()
    try:
        return watch_round(record, holder, prober, args, vip, macs)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        prober.stop()
        record["error"] = "docker: %s" % ((getattr(err, "stderr", "") or str(err)).strip()[-200:])
        return record


def watch_round(record, holder, prober, args, vip, macs):
    """The pause, the watch while frozen, the thaw, the watch after it; the figures into record."""
    time.sleep(2.0)
    paused = False
    timeline = []
    try:
        t_call = time.monotonic()
        freeze.docker("pause", holder)
        paused = True
        # the clock starts once the holder is frozen: a probe started while `docker pause` ran may
        # still have been answered by it
        t_pause = time.monotonic()
        record["pause_took_s"] = round(t_pause - t_call, 3)
        while time.monotonic() - t_pause < args.frozen:
            live = holders(vip, MASTERS, paused=(holder,))
            t = round(time.monotonic() - t_pause, 2)
            if not timeline or timeline[-1][1] != live:
                timeline.append([t, live])
            if live and not record.get("new_holder"):
                record["new_holder"] = live[0]
                record["new_holder_seen_s"] = t
                record["arp_after_move"] = dict(zip(("mac", "state"), arp_entry(vip)))
            if len(live) > 1:
                record["two_live_holders_s"] = t
            time.sleep(max(0.0, 0.5 - (time.monotonic() - t_pause - t)))
    finally:
        if paused:
            freeze.docker("unpause", holder, check=False)
        t_thaw = time.monotonic()
    after = []
    while time.monotonic() - t_thaw < args.after:
        now = holders(vip, MASTERS)
        t = round(time.monotonic() - t_thaw, 2)
        if not after or after[-1][1] != now:
            after.append([t, now])
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t_thaw - t)))
    t_end = time.monotonic()
    probes = prober.stop()
    final = holders(vip, MASTERS)
    record.update(round_figures(probes, t_pause, t_thaw, t_end))
    record["holder_after"] = final[0] if len(final) == 1 else None
    record["holders_after_timeline"] = after
    record["holders_frozen_timeline"] = timeline
    record["two_holders_after_thaw"] = any(len(h) > 1 for _, h in after)
    record["arp_after_thaw"] = dict(zip(("mac", "state"), arp_entry(vip)))
    for key in ("arp_after_move", "arp_after_thaw"):
        mac = (record.get(key) or {}).get("mac")
        if mac:
            record[key]["node"] = next((m for m, x in macs.items() if x == mac), None)
    if len(final) != 1:
        record["error"] = "after the thaw the VIP is held by %s" % (final or "no master")
    record["probes"] = [{"t": round(p["start"] - t_pause, 3), "took": round(p["end"] - p["start"], 3), "ok": p["ok"],
                         **({"error": p["error"][:120]} if not p["ok"] else {})} for p in probes]
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layout", nargs="?", default="novip")
    ap.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="freezes (default 5; fewer cannot pass)")
    ap.add_argument("--frozen", type=float, default=20, help="seconds the holder stays frozen (default 20)")
    ap.add_argument("--after", type=float, default=20, help="seconds watched after the thaw (default 20)")
    ap.add_argument("--max-gap", type=float, default=5, help="most seconds the VIP may stay unreachable (default 5)")
    ap.add_argument("--expect-preempt", choices=["true", "false"], default="true",
                    help="the configured preemption (kubeha_vip_preempt, default true): true (default), the "
                         "VIP goes back to the returning master; false, it stays where it moved")
    ap.add_argument("--vip", help="the VIP (default: loadbalancer_apiserver.address of the layout's inventory)")
    ap.add_argument("--port", type=int, help="its port (default: loadbalancer_apiserver.port, else 8443)")
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--server-name", default="auto", help="name the certificate is verified for (default auto)")
    ap.add_argument("--recover", type=float, default=180, help="seconds the bed may take to be healthy again")
    ap.add_argument("--out", help="JSON report (default reports/vip-freeze/<layout>-preempt-<bool>.json)")
    args = ap.parse_args(argv)
    preempt = args.expect_preempt == "true"
    vip, port = endpoint_of(args.layout) or ("172.30.0.10", 8443)
    vip, port = args.vip or vip, args.port or port
    source = next((m for m in MASTERS if freeze.docker("exec", m, "true", check=False).returncode == 0), None)
    if source is None:
        raise SystemExit("vip_freeze: no master container answers")
    ca_pem = freeze.docker("exec", source, "cat", CA_PATH).stdout
    context = ssl_context(ca_pem)
    server_name, why = choose_server_name(vip, port, context, args.server_name, args.timeout)
    macs = {m: mac_of(m) for m in MASTERS}
    print("vip_freeze: %d round(s) on layout %s: probe https://%s:%d/readyz every %.1f s (timeout %.1f s) from this "
          "machine, TLS verified for %s (%s); holder frozen %.0f s, watched %.0f s after the thaw; expected: %s"
          % (args.rounds, args.layout, vip, port, args.interval, args.timeout, server_name, why, args.frozen, args.after,
             "preemption" if preempt else "no preemption"), flush=True)
    report = {"layout": args.layout, "vip": vip, "port": port, "server_name": server_name, "interval_s": args.interval,
              "timeout_s": args.timeout, "frozen_s": args.frozen, "after_s": args.after, "max_gap_s": args.max_gap,
              "expect_preempt": preempt, "masters_mac": macs, "rounds": []}
    print(table_header(), flush=True)

    def probe_once():
        return readyz(vip, port, context, server_name, args.timeout)[0]

    for n in range(1, args.rounds + 1):
        record = one_round(n, args, vip, port, context, server_name, macs)
        report["rounds"].append(record)
        print(table_row(record), flush=True)
        if record.get("error") and "holder" not in record:
            break
        # before the next round, and after the last one (the bed is left as it was found)
        ok, took, detail = healthy_again(args.layout, vip, MASTERS, probe_once, args.recover)
        record["recovered"] = {"ok": ok, "seconds": round(took, 1), "detail": detail}
        if not ok:
            record["error"] = "not healthy again %.0f s after the round: %s" % (took, detail)
            print("vip_freeze: " + record["error"], flush=True)
            break
    ok, reasons = judge(report["rounds"], args.max_gap, preempt)
    gaps = [r["unreachable_s"] for r in report["rounds"] if r.get("unreachable_s") is not None]
    report.update(verdict="PASS" if ok else "FAIL", reasons=reasons,
                  unreachable_max_s=max(gaps) if gaps else None,
                  unreachable_mean_s=round(sum(gaps) / len(gaps), 2) if gaps else None,
                  failed_frozen_total=sum(r.get("failed_frozen", 0) for r in report["rounds"]),
                  probes_frozen_total=sum(r.get("probes_frozen", 0) for r in report["rounds"]),
                  failed_after_thaw_total=sum(r.get("failed_after_thaw", 0) for r in report["rounds"]))
    out = Path(args.out) if args.out else ROOT / "reports" / "vip-freeze" / (
        "%s-preempt-%s.json" % (args.layout, args.expect_preempt))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for reason in reasons:
        print("  " + reason)
    # one line that says it all (scripts/test-playbooks.sh shows the last one)
    print("vip_freeze: %s: %d round(s) of the VIP holder frozen %.0f s: unreachable max %s s, mean %s s (limit %.0f s); "
          "%d of %d probes failed while frozen, %d of %d after the thaw; the VIP %s after the thaw (%s)"
          % (report["verdict"], len(report["rounds"]), args.frozen, report["unreachable_max_s"],
             report["unreachable_mean_s"], args.max_gap, report["failed_frozen_total"], report["probes_frozen_total"],
             report["failed_after_thaw_total"], sum(r.get("probes_after_thaw", 0) for r in report["rounds"]),
             where_after(report["rounds"]), os.path.relpath(out, ROOT) if out.resolve().is_relative_to(ROOT) else out),
          flush=True)
    return 0 if ok else 1


def where_after(rounds):
    """Where the VIP went after the thaws, in words."""
    back = sum(1 for r in rounds if r.get("holder_after") and r["holder_after"] == r.get("holder"))
    stayed = sum(1 for r in rounds if r.get("holder_after") and r["holder_after"] == r.get("new_holder"))
    parts = []
    if back:
        parts.append("went back to the returning master %d time(s)" % back)
    if stayed:
        parts.append("stayed on the new holder %d time(s)" % stayed)
    return ", ".join(parts) or "was on no single master"


if __name__ == "__main__":
    sys.exit(main())
