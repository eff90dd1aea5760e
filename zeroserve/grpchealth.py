"""The standard gRPC health service's two messages (``grpc.health.v1``), the protocol the
kubelet's gRPC probe and Knative's queue-proxy speak; used by the queue-proxy's readiness
probe (``queueproxy/readiness.py``) and the local runtime's kubelet probes
(``zeroserve/local/probes.py``)."""

from __future__ import annotations

# The standard gRPC health service (grpc.health.v1, the protocol the kubelet's gRPC
# probe and upstream's queue-proxy speak). grpcio-health-checking would bring the
# generated classes and protobuf with them for two one-field messages, so they are
# encoded here by hand, in the protobuf wire format:
#   HealthCheckRequest  { string service = 1; }  -> tag 0x0a (field 1, length-delimited),
#       varint length, the UTF-8 bytes; service "" is the default, so the message is empty.
#   HealthCheckResponse { ServingStatus status = 1; }  -> tag 0x08 (field 1, varint), the
#       enum value: UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3.
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
HEALTH_SERVING = 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def encode_health_request(service: str) -> bytes:
    """``HealthCheckRequest{service}`` in protobuf wire format."""
    if not service:
        return b""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw


def decode_health_status(data: bytes) -> int:
    """The ``status`` of a ``HealthCheckResponse`` (0, UNKNOWN, when absent).

    Other fields are skipped, as protobuf readers do; the last ``status`` wins.
    """
    status = 0
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            if field == 1:
                status = value
        elif wire == 2:
            size, i = _read_varint(data, i)
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise ValueError("truncated field")
    return status
