"""The control plane, pure: Knative's Service -> Configuration -> Revision and Route
semantics, status, and the revisions and routing table the data plane runs from."""
