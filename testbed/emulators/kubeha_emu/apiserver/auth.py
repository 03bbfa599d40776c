"""Authentication: client certificates (verified by the TLS layer against --client-ca-file; user =
CN, groups = O), static bearer tokens from --token-auth-file (CSV `token,user,uid,"g1,g2"`) and
service-account tokens signed by a key of --service-account-key-file (ServiceAccountTokens).
There is no authorization: every authenticated user may do everything (no RBAC), and anonymous
callers may only reach the health and version endpoints and GET kube-public/cluster-info, as
kubeadm's RBAC grants (Role kube-public/kubeadm:bootstrap-signer-clusterinfo, bound to
system:anonymous, cmd/kubeadm/app/phases/bootstraptoken/clusterinfo: joining nodes read it
without credentials)."""

import base64
import binascii
import csv
import json
import os
import subprocess
import tempfile
import threading
import time

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


def _b64url(text):
    text = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


LEGACY_ISSUER = "kubernetes/serviceaccount"


class ServiceAccountTokens:
    """Service-account tokens (JWTs, RS256) verified against --service-account-key-file, as the real
    authenticator does (pkg/serviceaccount/jwt.go): the signature by one of the public keys, then the
    claims. Legacy Secret tokens (iss "kubernetes/serviceaccount", claims
    kubernetes.io/serviceaccount/{namespace,service-account.name,service-account.uid,secret.name})
    and bound tokens (iss one of --service-account-issuer, not expired, claims under "kubernetes.io").
    User system:serviceaccount:<ns>:<name>, groups system:serviceaccounts and
    system:serviceaccounts:<ns>. The signature is checked with the openssl CLI (the node image has
    no Python crypto library), once per token: a verdict is kept until the token expires.
    Not modelled: the lookup of the Secret / bound object (--service-account-lookup)."""

    def __init__(self, key_files, issuers, now=time.time):
        self.key_files = [k for k in key_files if k]
        self.issuers = [i for i in issuers if i]
        self.now = now
        self.lock = threading.Lock()
        self.cache = {}

    def _signed_by_a_key(self, data, signature):
        with tempfile.NamedTemporaryFile(prefix="kubeha-sa-sig-") as sig:
            sig.write(signature)
            sig.flush()
            for key in self.key_files:
                try:
                    proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", key, "-signature", sig.name],
                                          input=data, capture_output=True, timeout=10, check=False)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if proc.returncode == 0 and proc.stdout.strip().endswith(b"OK"):
                    return True
        return False

    def _claims(self, token):
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
            return None
        if not self._signed_by_a_key(("%s.%s" % (parts[0], parts[1])).encode(), signature):
            return None
        return claims

    def _user(self, claims):
        now = self.now()
        if claims.get("iss") == LEGACY_ISSUER:
            namespace = claims.get("kubernetes.io/serviceaccount/namespace")
            name = claims.get("kubernetes.io/serviceaccount/service-account.name")
            uid = claims.get("kubernetes.io/serviceaccount/service-account.uid", "")
            if not claims.get("kubernetes.io/serviceaccount/secret.name"):
                return None
        elif claims.get("iss") in self.issuers:
            if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
                return None
            if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 60:
                return None
            audiences = claims.get("aud")
            audiences = [audiences] if isinstance(audiences, str) else (audiences or [])
            # --api-audiences defaults to the first --service-account-issuer
            if self.issuers[0] not in audiences:
                return None
            private = claims.get("kubernetes.io") or {}
            account = private.get("serviceaccount") or {}
            namespace, name, uid = private.get("namespace"), account.get("name"), account.get("uid", "")
        else:
            return None
        if not namespace or not name or claims.get("sub") != "system:serviceaccount:%s:%s" % (namespace, name):
            return None
        return User(claims["sub"], ["system:serviceaccounts", "system:serviceaccounts:" + namespace,
                                    "system:authenticated"], "serviceaccount-token", uid)

    def lookup(self, token):
        if not self.key_files or token.count(".") != 2:
            return None
        with self.lock:
            cached = self.cache.get(token)
        if cached is None:
            claims = self._claims(token)
            with self.lock:
                if len(self.cache) > 1000:
                    self.cache.clear()
                self.cache[token] = cached = (claims,)
        claims = cached[0]
        return self._user(claims) if claims else None
