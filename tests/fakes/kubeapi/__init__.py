"""In-repo fake Kubernetes API server used by the zeroserve test suite.

Start at :class:`tests.fakes.kubeapi.fakeapi.FakeKubeAPI`; the other modules are its parts.
"""
