"""In-repo fake Kubernetes API server used by the zeroserve test suite.

Start at :class:`tests.kube.fakeapi.FakeKubeAPI`; the other modules are its parts.
"""
