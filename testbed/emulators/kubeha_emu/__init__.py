"""Shared code of kubeha's test-bed emulators (kube-apiserver, kubelet, controller-manager,
scheduler, kube-proxy). Only the Python standard library and PyYAML are used, so the emulators run
on a plain Debian host with python3 and python3-yaml."""
