"""Authentication: client certificates (verified by the TLS layer against --client-ca-file; user =
CN, groups = O) and static bearer tokens from --token-auth-file (CSV `token,user,uid,"g1,g2"`).
There is no authorization: every authenticated user may do everything (no RBAC), and anonymous
callers may only reach the health and version endpoints and GET kube-public/cluster-info, as
kubeadm's RBAC grants (Role kube-public/kubeadm:bootstrap-signer-clusterinfo, bound to
system:anonymous, cmd/kubeadm/app/phases/bootstraptoken/clusterinfo: joining nodes read it
without credentials)."""

import csv
import os
import threading

ANONYMOUS_PATHS = ("/livez", "/readyz", "/healthz", "/version")
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


class User:
    def __init__(self, name, groups, method, uid=""):
        self.name = name
        self.groups = list(groups)
        self.method = method
        self.uid = uid

    def key(self):
        return (self.name, tuple(self.groups), self.method)

    def __repr__(self):
        return "user=%s groups=%s via %s" % (self.name, ",".join(self.groups), self.method)


ANONYMOUS = User("system:anonymous", ["system:unauthenticated"], "anonymous")


def anonymous_allowed(path, method="GET"):
    if path == CLUSTER_INFO:
        return method == "GET"
    return any(path == p or path.startswith(p + "/") for p in ANONYMOUS_PATHS)


def user_from_peercert(cert):
    """`cert` is ssl.SSLSocket.getpeercert() of a verified client certificate."""
    if not cert:
        return None
    cn = None
    groups = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and cn is None:
                cn = value
            elif key == "organizationName":
                groups.append(value)
    if not cn:
        return None
    return User(cn, groups + ["system:authenticated"], "client-cert")


class TokenFile:
    """Static token file, re-read when it changes on disk (the real one reads it only at start; a
    re-read is harmless and lets tests add tokens)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.sig = None
        self.tokens = {}
        self._load()

    def _load(self):
        st = os.stat(self.path)
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self.sig:
            return
        tokens = {}
        with open(self.path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) < 3 or not row[0].strip() or row[0].lstrip().startswith("#"):
                    continue
                groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
                tokens[row[0].strip()] = (row[1].strip(), row[2].strip(), groups)
        self.tokens = tokens
        self.sig = sig

    def lookup(self, token):
        with self.lock:
            try:
                self._load()
            except OSError:
                pass
            entry = self.tokens.get(token)
        if not entry:
            return None
        name, uid, groups = entry
        return User(name, groups + ["system:authenticated"], "token", uid)
