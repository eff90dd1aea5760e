"""The control plane, pure: Knative's Service -> Configuration -> Revision and Route
semantics, status, and the revisions and routing table the data plane runs from."""

from zeroserve.serving.controller import Controller, reconcile
from zeroserve.serving.kinds import ControllerError, NotAllowed, NotFound, UnknownKind
from zeroserve.serving.revisions import DesiredRevision, RunnableContainer

__all__ = [
    "Controller",
    "ControllerError",
    "DesiredRevision",
    "NotAllowed",
    "NotFound",
    "RunnableContainer",
    "UnknownKind",
    "reconcile",
]
