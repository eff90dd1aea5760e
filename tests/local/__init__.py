"""Local mode: the control protocol, the runtime's replicas, app ports, and ``zeroserve up``
end to end."""
