"""A gRPC fuzzer: random and malformed protobuf bytes sent to every method of Brook's services.

For each method of AdminService and ControllerService (on a controller) and BrokerService (on a
broker): random bytes, truncated / bit-flipped / spliced encodings of random valid messages, and
lengths that claim more than the message holds. Every call must end with a status (OK, or an error
status such as INTERNAL for bytes that do not parse); a node that dies fails the run.

    python -m tests.fuzz.grpc_fuzz --controller HOST:PORT --broker HOST:PORT --seconds 20
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor

from brookpb import admin_pb2, broker_pb2, controller_pb2
from cluster.grpcutil import channel_options

__all__ = ["fuzz", "random_message"]

_SERVICES = {
    "controller": [admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
                   controller_pb2.DESCRIPTOR.services_by_name["ControllerService"]],
    "broker": [broker_pb2.DESCRIPTOR.services_by_name["BrokerService"]],
}
# Methods whose valid-looking random requests would change the cluster under the test (register
# fake brokers, alter configs, elect leaders, delete topics): they get malformed bytes only.
_MALFORMED_ONLY = {"RegisterBroker", "BrokerHeartbeat", "AlterPartition", "AlterConfigs", "ElectLeaders",
                   "DeleteTopics", "CreateTopics", "AllocateProducerIds", "Produce"}


def _scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    t = field.type
    if t in (FieldDescriptor.TYPE_STRING,):
        return rng.choice(["", "t", "__consumer_offsets", "x" * rng.randint(0, 300), "\u00e9\u4e2d"])
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 200))
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e300])
    if t == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values])
    unsigned = t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                     FieldDescriptor.TYPE_FIXED64)
    bits = 64 if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                       FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64) else 32
    if unsigned:
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])
    return rng.choice([0, 1, -1, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, rng.randint(-1000, 1000)])


def random_message(message_class: Any, rng: random.Random, depth: int = 0) -> Any:
    message = message_class()
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            if depth >= 3:
                continue
            sub_class = type(getattr(message, field.name).add() if repeated else getattr(message, field.name))
            if repeated:
                getattr(message, field.name).pop()
                for _ in range(rng.randint(0, 3)):
                    getattr(message, field.name).append(random_message(sub_class, rng, depth + 1))
            else:
                getattr(message, field.name).CopyFrom(random_message(sub_class, rng, depth + 1))
        elif repeated:
            getattr(message, field.name).extend(_scalar(field, rng) for _ in range(rng.randint(0, 3)))
        else:
            setattr(message, field.name, _scalar(field, rng))
    return message


def _malformed(valid: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    data = bytearray(valid)
    if kind == 0 or not data:
        return rng.randbytes(rng.randint(0, 64))
    if kind == 1:
        return bytes(data[:rng.randrange(len(data))])
    if kind == 2:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 3:  # a length-delimited field 1 claiming far more than follows
        return b"\x0a\xff\xff\xff\xff\x0f" + bytes(data[:8])
    if kind == 4:  # a deep nesting of groups/messages
        return b"\x0a\x02" * 200 + b"\x08\x01"
    data[rng.randrange(len(data) + 1):rng.randrange(len(data) + 1)] = rng.randbytes(rng.randint(1, 16))
    return bytes(data)


def fuzz(targets: dict[str, str], seconds: float, seed: int) -> tuple[Counter[str], Counter[str]]:
    """(calls per method, status codes seen) after `seconds` of calls against {role: address}."""
    rng = random.Random(seed)
    calls: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    plans = []
    for role, address in targets.items():
        channel = grpc.insecure_channel(address, options=channel_options())
        for service in _SERVICES[role]:
            for method in service.methods:
                stub = channel.unary_unary(f"/{service.full_name}/{method.name}")
                message_class = _message_class(method.input_type)
                plans.append((method.name, stub, message_class))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        name, stub, message_class = rng.choice(plans)
        valid = random_message(message_class, rng).SerializeToString()
        payload = _malformed(valid, rng) if name in _MALFORMED_ONLY or rng.random() < 0.6 else valid
        calls[name] += 1
        try:
            stub(payload, timeout=2.0)
            statuses["OK"] += 1
        except grpc.RpcError as e:
            statuses[e.code().name] += 1
    return calls, statuses


def _message_class(descriptor: Any) -> Any:
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(descriptor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--controller", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    calls, statuses = fuzz({"controller": args.controller, "broker": args.broker}, args.seconds, args.seed)
    for name in sorted(calls):
        print(f"{name:24s} {calls[name]}")
    print(f"calls={sum(calls.values())} methods={len(calls)} statuses={dict(statuses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
