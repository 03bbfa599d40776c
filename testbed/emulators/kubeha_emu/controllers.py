"""Controllers the kube-controller-manager emulator runs while it leads. Only the bootstrap
signer matters to the conversion: it keeps `kube-public/cluster-info`'s `jws-kubeconfig-<id>`
signatures in step with its `kubeconfig` key (new nodes joining check them).

Signature format (k8s.io/cluster-bootstrap/token/jws ComputeDetachedSignature): a compact JWS,
HS256, whose HMAC key is the token secret and whose protected header is
{"alg":"HS256","kid":"<token-id>"}, with the payload part removed: `<header>..<signature>`.
"""

import base64
import datetime
import hashlib
import hmac
import json
import re

SECRET_TYPE = "bootstrap.kubernetes.io/token"
JWS_PREFIX = "jws-kubeconfig-"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
SECRETS = "/api/v1/namespaces/kube-system/secrets"
TOKEN_ID = re.compile(r"^[a-z0-9]{6}$")
TOKEN_SECRET = re.compile(r"^[a-z0-9]{16}$")


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def detached_jws(content, token_id, token_secret):
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    signing_input = (header + "." + payload).encode("ascii")
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return header + ".." + _b64url(signature)


def _decoded(data, key):
    value = (data or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _expired(expiration):
    if not expiration:
        return False
    try:
        when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True
    return when <= datetime.datetime.now(datetime.timezone.utc)


def signing_tokens(secrets):
    """{token-id: token-secret} of valid, unexpired bootstrap tokens usable for signing."""
    tokens = {}
    for secret in secrets:
        if secret.get("type") != SECRET_TYPE:
            continue
        data = secret.get("data") or {}
        token_id = _decoded(data, "token-id")
        token_secret = _decoded(data, "token-secret")
        if not token_id or not token_secret or not TOKEN_ID.match(token_id) \
                or not TOKEN_SECRET.match(token_secret):
            continue
        if (secret.get("metadata") or {}).get("name") != "bootstrap-token-" + token_id:
            continue
        if _decoded(data, "usage-bootstrap-signing") != "true":
            continue
        if _expired(_decoded(data, "expiration")):
            continue
        tokens[token_id] = token_secret
    return tokens


class BootstrapSigner:
    def __init__(self, client, reporter=None):
        self.client = client
        self.reporter = reporter

    def sync(self):
        """One pass. Returns a short description of what changed (or None)."""
        cm_answer = self.client.get(CLUSTER_INFO)
        if cm_answer.status != 200 or not isinstance(cm_answer.json, dict):
            return None
        configmap = cm_answer.json
        data = dict(configmap.get("data") or {})
        content = data.get("kubeconfig")
        if content is None:
            return None
        secrets_answer = self.client.get(SECRETS)
        if secrets_answer.status != 200 or not isinstance(secrets_answer.json, dict):
            return None
        tokens = signing_tokens(secrets_answer.json.get("items") or [])
        changed = []
        for key in list(data):
            if key.startswith(JWS_PREFIX) and key[len(JWS_PREFIX):] not in tokens:
                del data[key]
                changed.append("removed " + key)
        for token_id, token_secret in sorted(tokens.items()):
            key = JWS_PREFIX + token_id
            signature = detached_jws(content, token_id, token_secret)
            if data.get(key) != signature:
                data[key] = signature
                changed.append("signed " + key)
        if not changed:
            return None
        configmap["data"] = data
        answer = self.client.put(CLUSTER_INFO, configmap)   # carries metadata.resourceVersion
        if answer.status != 200:
            return None   # 409: someone changed it meanwhile; the next pass re-reads
        detail = ", ".join(changed)
        if self.reporter:
            self.reporter.event("bootstrap-signer", self.client.server, detail, force=True)
        return detail
