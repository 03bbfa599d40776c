"""kube-apiserver emulator: HTTPS front end, authentication, objects stored in a real etcd 3.4
through its v3 JSON gateway. Entry point: `kubeha_emu.apiserver.server.main`."""
