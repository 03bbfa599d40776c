"""Serving TLS context that follows the cert/key (and client CA) files on disk, like the real
apiserver's dynamic serving certificate: every new connection checks the files' identity (inode,
size, mtime); when they changed, a new context is built. If the new cert and key do not match (or
do not parse), the previous pair keeps being served and the failure is logged once per file state."""

import os
import ssl
import threading


def _signature(paths):
    sig = []
    for path in paths:
        try:
            st = os.stat(path)
            sig.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError as err:
            sig.append((path, None, None, str(err)))
    return tuple(sig)


class DynamicServingTLS:
    def __init__(self, cert_file, key_file, client_ca_file=None, log=None):
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.log = log or (lambda event, detail: None)
        self.lock = threading.Lock()
        self.ctx = None
        self.loaded_sig = None
        self.tried_sig = None
        self.generation = 0
        sig = self._sig()
        self.ctx = self._build()  # startup: a bad pair is fatal, as for the real server
        self.loaded_sig = self.tried_sig = sig

    def _paths(self):
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p]

    def _sig(self):
        return _signature(self._paths())

    def _build(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            ctx.load_verify_locations(cafile=self.client_ca_file)
            # Ask for a client certificate and verify it when one is sent; token and anonymous
            # clients send none.
            ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def context(self):
        """The context to use for a new connection (reloading first if the files changed)."""
        sig = self._sig()
        if sig == self.loaded_sig or sig == self.tried_sig:
            return self.ctx
        with self.lock:
            if sig == self.loaded_sig or sig == self.tried_sig:
                return self.ctx
            self.tried_sig = sig
            try:
                ctx = self._build()
            except (ssl.SSLError, OSError, ValueError) as err:
                self.log("error", "serving certificate reload failed, keeping the previous pair: %s" % err)
                return self.ctx
            self.ctx = ctx
            self.loaded_sig = sig
            self.generation += 1
            self.log("cert-reload", "loaded serving certificate %s (reload %d)" % (self.cert_file, self.generation))
            return self.ctx
