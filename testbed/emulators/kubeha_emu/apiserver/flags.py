"""Command-line flags of kube-apiserver: `--flag=value` and `--flag value`. Flags the emulator models
are listed in MODELED; every other `--flag` (the many kubeadm puts in kube-apiserver.yaml) is accepted
and reported back so the caller can log it once."""

import re

MODELED = {
    "advertise-address": None,
    "bind-address": "0.0.0.0",
    "secure-port": "6443",
    "tls-cert-file": None,
    "tls-private-key-file": None,
    "client-ca-file": None,
    "etcd-servers": None,
    "etcd-cafile": None,
    "etcd-certfile": None,
    "etcd-keyfile": None,
    "token-auth-file": None,
    "service-account-key-file": None,
    "service-account-issuer": None,
    "shutdown-delay-duration": "0s",
}


class FlagError(ValueError):
    pass


def parse(argv):
    """Returns (values, ignored): values maps every MODELED flag to its string value (or default);
    ignored maps unmodeled flag names to their values."""
    values = dict(MODELED)
    ignored = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError("unexpected argument %r" % arg)
        body = arg.lstrip("-")
        if "=" in body:
            name, value = body.split("=", 1)
        else:
            name = body
            if i < len(argv) and not argv[i].startswith("-"):
                value = argv[i]
                i += 1
            else:
                value = "true"  # a boolean flag given bare
        if name in MODELED:
            values[name] = value
        else:
            ignored[name] = value
    return values, ignored


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text):
    """Go time.ParseDuration subset: '5s', '1m30s', '250ms', '0'."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise FlagError("invalid duration %r" % text)
    return sum(float(n) * _UNITS[u] for n, u in parts)
