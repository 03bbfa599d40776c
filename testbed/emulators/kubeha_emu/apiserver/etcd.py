"""Minimal etcd v3 client over the JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/put,
/v3/kv/deleterange, /v3/kv/txn; keys and values base64), TLS with the etcd client certificate.

Servers are tried in the order of --etcd-servers, starting with the last one that answered; a
connection failure moves on to the next one. Kept-alive connections are shared through a small pool
(request threads live only as long as their client connection)."""

import base64
import http.client
import json
import ssl
import threading
import urllib.parse


class EtcdUnavailable(Exception):
    pass


class EtcdError(Exception):
    pass


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text or "")


def prefix_end(prefix):
    """range_end that selects every key starting with `prefix`."""
    data = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return b"\0"


class KV:
    __slots__ = ("key", "value", "create_revision", "mod_revision")

    def __init__(self, raw):
        self.key = unb64(raw.get("key")).decode()
        self.value = unb64(raw.get("value"))
        self.create_revision = int(raw.get("create_revision", 0))
        self.mod_revision = int(raw.get("mod_revision", 0))


class EtcdClient:
    def __init__(self, servers, cafile=None, certfile=None, keyfile=None, timeout=5.0):
        self.servers = [s.strip().rstrip("/") for s in servers if s.strip()]
        if not self.servers:
            raise ValueError("no etcd servers")
        self.timeout = timeout
        self.ctx = None
        if any(s.startswith("https://") for s in self.servers):
            self.ctx = ssl.create_default_context(cafile=cafile)
            if certfile:
                self.ctx.load_cert_chain(certfile, keyfile)
        self.preferred = 0
        self.pool_lock = threading.Lock()
        self.idle = {s: [] for s in self.servers}

    POOL_SIZE = 8

    def _conn(self, server, fresh=False):
        with self.pool_lock:
            if fresh:  # the pooled connections may all be stale: drop them
                for old in self.idle[server]:
                    old.close()
                self.idle[server] = []
            elif self.idle[server]:
                return self.idle[server].pop()
        url = urllib.parse.urlsplit(server)
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.hostname, url.port or 2379, timeout=self.timeout,
                                               context=self.ctx)
        return http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=self.timeout)

    def _release(self, server, conn):
        with self.pool_lock:
            if len(self.idle[server]) < self.POOL_SIZE:
                self.idle[server].append(conn)
                return
        conn.close()

    def call(self, path, body):
        """POST a JSON body to the first server that answers; returns (server, decoded reply)."""
        data = json.dumps(body).encode()
        errors = []
        start = self.preferred
        order = self.servers[start:] + self.servers[:start]
        for server in order:
            for attempt in (0, 1):  # a kept-alive connection may have been closed by the server
                conn = self._conn(server, fresh=attempt > 0)
                try:
                    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    payload = resp.read()
                except (OSError, http.client.HTTPException) as err:
                    conn.close()
                    if attempt == 0 and isinstance(err, (http.client.RemoteDisconnected,
                                                         BrokenPipeError, ConnectionResetError)):
                        continue
                    errors.append("%s: %s" % (server, err))
                    break
                if resp.will_close:
                    conn.close()
                else:
                    self._release(server, conn)
                if resp.status >= 500 and resp.status != 501:
                    errors.append("%s: HTTP %d %s" % (server, resp.status, payload[:200].decode("utf-8", "replace")))
                    break
                try:
                    reply = json.loads(payload or b"{}")
                except ValueError:
                    raise EtcdError("%s: invalid reply %r" % (server, payload[:200]))
                if resp.status != 200:
                    raise EtcdError("%s: HTTP %d %s" % (server, resp.status, reply.get("message") or reply.get("error")))
                self.preferred = self.servers.index(server)
                return server, reply
        raise EtcdUnavailable("; ".join(errors))

    # --- KV operations ----------------------------------------------------------------------
    def get(self, key):
        """Returns (kv or None, header revision)."""
        _, reply = self.call("/v3/kv/range", {"key": b64(key)})
        kvs = [KV(r) for r in reply.get("kvs", [])]
        return (kvs[0] if kvs else None), int(reply["header"]["revision"])

    def list(self, prefix, revision=None):
        """Returns ([kv], header revision) for every key under `prefix` (at `revision` when given:
        etcd keeps history until compaction)."""
        body = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if revision:
            body["revision"] = str(revision)
        _, reply = self.call("/v3/kv/range", body)
        return [KV(r) for r in reply.get("kvs", [])], int(reply["header"]["revision"])

    def _txn(self, compare, success, failure=None):
        body = {"compare": compare, "success": success}
        if failure:
            body["failure"] = failure
        _, reply = self.call("/v3/kv/txn", body)
        return bool(reply.get("succeeded", False)), int(reply["header"]["revision"]), reply

    def create(self, key, value):
        """Put only if the key does not exist. Returns the new mod_revision or None if it exists."""
        ok, rev, _ = self._txn(
            [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": b64(key), "value": b64(value)}}])
        return rev if ok else None

    def update(self, key, value, mod_revision=None):
        """Put if the key exists and (when given) its mod_revision matches.
        Returns (new mod_revision or None, current kv when it failed)."""
        compare = [{"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}] \
            if mod_revision is not None else \
            [{"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}]
        ok, rev, reply = self._txn(compare, [{"request_put": {"key": b64(key), "value": b64(value)}}],
                                   [{"request_range": {"key": b64(key)}}])
        if ok:
            return rev, None
        kvs = []
        for r in reply.get("responses", []):
            kvs.extend(r.get("response_range", {}).get("kvs", []))
        return None, (KV(kvs[0]) if kvs else None)

    def put(self, key, value):
        _, reply = self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(reply["header"]["revision"])

    def delete(self, key, mod_revision=None):
        """Delete the key (only at `mod_revision` when given). Returns (deleted kv or None, ok)."""
        compare = [{"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}] \
            if mod_revision is not None else \
            [{"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}]
        ok, rev, reply = self._txn(compare, [{"request_delete_range": {"key": b64(key), "prev_kv": True}}])
        if not ok:
            return None, False
        for r in reply.get("responses", []):
            prev = r.get("response_delete_range", {}).get("prev_kvs", [])
            if prev:
                return KV(prev[0]), True
        return None, True

    def delete_prefix(self, prefix):
        _, reply = self.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return int(reply.get("deleted", 0))

    def health(self):
        """A linearizable read (fails without quorum), like the real apiserver's etcd check."""
        server, reply = self.call("/v3/kv/range", {"key": b64("health")})
        return server, int(reply["header"]["revision"])
