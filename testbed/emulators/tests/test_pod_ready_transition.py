"""A pod's Ready condition keeps its lastTransitionTime while it holds, but a container the kubelet
started anew (a node booted with the pod still bound to it, e.g. a test bed from its snapshot) gets a
new one even when the pod object already said Ready from before: the real kubelet reports a new
container not ready until its probe passes. An adopted container (kubelet restart, process kept)
keeps it."""

from kubeha_emu import daemonpod

OLD = "2026-01-01T00:00:00Z"


class Answer:
    status = 200


class FakeApi:
    server = "https://127.0.0.1:6443"

    def __init__(self):
        self.puts = []

    def put(self, path, body):
        self.puts.append(body)
        return Answer()


class Reporter:
    def event(self, *args, **kwargs):
        pass


def template_pod(adopted, published):
    pod = daemonpod.TemplatePod.__new__(daemonpod.TemplatePod)
    pod.api, pod.reporter, pod.node_ip = FakeApi(), Reporter(), "10.0.0.1"
    pod.namespace, pod.ds_name, pod.pod_name = "kube-system", "cilium", "cilium-abcde"
    pod.container = {"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.17.3"}
    pod.restarts, pod.ready, pod.started = 0, True, True
    pod.started_wall = 1796467200.0
    pod.adopted, pod.published = adopted, published
    return pod


def ready_since(api):
    conditions = api.puts[-1]["status"]["conditions"]
    return next(c["lastTransitionTime"] for c in conditions if c["type"] == "Ready")


def bound_ready_pod():
    return {"metadata": {"name": "cilium-abcde", "namespace": "kube-system"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": OLD}]}}


def test_new_container_gets_a_new_ready_transition():
    pod = template_pod(adopted=False, published=None)
    pod._publish(bound_ready_pod())
    assert ready_since(pod.api) == daemonpod.rfc3339(pod.started_wall) != OLD


def test_ready_transition_kept_while_it_holds_and_for_an_adopted_container():
    for adopted, published in ((False, (True, 0)), (True, None)):
        pod = template_pod(adopted=adopted, published=published)
        pod._publish(bound_ready_pod())
        assert ready_since(pod.api) == OLD
