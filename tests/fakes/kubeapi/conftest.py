"""Fixtures for the fake Kubernetes API server's own tests (defined in :mod:`.fixtures`).

``fake_kube`` is a started :class:`FakeKubeAPI` (stopped after the test), ``kubeconfig`` the
file it wrote, and ``k8s_client`` a ``kubernetes_asyncio`` ApiClient configured from such a
file exactly as production code would load a kubeconfig.
"""

from .fixtures import fake_kube, k8s_client, kubeconfig

__all__ = ["fake_kube", "k8s_client", "kubeconfig"]
