"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
leaseDuration 15 s, renewDeadline 10 s, retryPeriod 2 s, identity `<hostname>_<uuid>`.

Expiry is judged on the candidate's own clock from the moment it last saw the record change (as
client-go does), so a new candidate waits a full lease duration before taking over a lease it finds
held. Updates carry resourceVersion; a 409 means someone else won the race. A leader that cannot
renew for renewDeadline loses leadership; the real components then exit (klog.Fatal "leaderelection
lost") and the kubelet restarts them: the caller does that.
"""

import datetime
import socket
import time
import uuid

LEASE_DURATION = 15
RENEW_DEADLINE = 10
RETRY_PERIOD = 2


def micro_time(ts=None):
    ts = time.time() if ts is None else ts
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def identity():
    return "%s_%s" % (socket.gethostname(), uuid.uuid4())


class LeaderElector:
    def __init__(self, client, namespace, name, ident=None, reporter=None,
                 lease_duration=LEASE_DURATION, renew_deadline=RENEW_DEADLINE):
        self.client = client
        self.path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" % (namespace, name)
        self.create_path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % namespace
        self.namespace = namespace
        self.name = name
        self.identity = ident or identity()
        self.reporter = reporter
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.leading = False
        self.last_renew = None          # monotonic time of our last successful acquire/renew
        self.observed = None            # (holder, renewTime) last seen
        self.observed_at = None         # monotonic time we saw it change
        self.leader = None

    def _spec(self, previous):
        now = micro_time()
        spec = dict(previous or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self.identity:
            if spec.get("holderIdentity"):
                transitions += 1
            spec["acquireTime"] = now
        spec.update({"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_duration,
                     "renewTime": now, "leaseTransitions": transitions})
        return spec

    def try_acquire_or_renew(self):
        """One round. Returns True when we hold the lease after it."""
        now = time.monotonic()
        try:
            answer = self.client.get(self.path)
            if answer.status == 404:
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.name, "namespace": self.namespace},
                         "spec": self._spec(None)}
                created = self.client.post(self.create_path, lease)
                return self._result(created.status in (200, 201), now)
            if answer.status != 200 or not isinstance(answer.json, dict):
                return self._result(False, now)
            lease = answer.json
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            record = (holder, spec.get("renewTime"))
            if record != self.observed:
                self.observed = record
                self.observed_at = now
            self._note_leader(holder)
            duration = int(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and now < self.observed_at + duration:
                return self._result(False, now)
            lease["spec"] = self._spec(spec)
            updated = self.client.put(self.path, lease)
            return self._result(updated.status == 200, now)
        except OSError:
            return self._result(False, now)

    def _note_leader(self, holder):
        if holder != self.leader:
            self.leader = holder
            if self.reporter:
                self.reporter.event("leader", self.client.server, "new leader observed: %s" % (holder or "<none>"),
                                    force=True)

    def _result(self, held, now):
        if held:
            if not self.leading and self.reporter:
                self.reporter.event("leader", self.client.server,
                                    "acquired lease %s/%s as %s" % (self.namespace, self.name, self.identity),
                                    force=True)
            self.leading = True
            self.last_renew = now
            self.leader = self.identity
        return held

    def lost(self):
        """True when we were leading and could not renew within renewDeadline."""
        return self.leading and self.last_renew is not None and \
            time.monotonic() - self.last_renew > self.renew_deadline
