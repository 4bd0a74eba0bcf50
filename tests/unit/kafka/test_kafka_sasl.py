"""The SASL gate and authorization on a real listener socket (FakeCore, SASL_PLAINTEXT, no TLS).

Before authentication nothing but ApiVersions / SaslHandshake / SaslAuthenticate is served; a failed
exchange is answered with SASL_AUTHENTICATION_FAILED and the connection closed; after SCRAM (or
PLAIN, or a v0 raw-token exchange) the principal is User:<name> and the ACLs of the image apply.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct

import pytest
from kio.schema.errors import ErrorCode
from wire_helpers import FakeCore, WireClient, sample_request

from broker.kafka.codec import build, request_class
from broker.kafka.server import ListenerSecurity, start_kafka_listener
from broker.kafka.session import Authorizer
from cluster.image import replay_all
from cluster.records import AclRecord, ScramCredentialRecord
from cluster.security.acl import AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.scram import credential_from_password

MECH = "SCRAM-SHA-512"
SECURITY = ListenerSecurity("SASL_PLAINTEXT", "SASL_PLAINTEXT", None, (MECH, "PLAIN"))


def _core() -> FakeCore:
    core = FakeCore()
    c = credential_from_password(MECH, "pw", b"salty", 4096)
    core._image = replay_all(core._image, [
        ScramCredentialRecord("alice", MECH, c.salt, c.stored_key, c.server_key, c.iterations),
        AclRecord(b"\x01" * 16, int(ResourceType.TOPIC), "t", int(PatternType.LITERAL), "User:alice", "*",
                  int(AclOperation.WRITE), int(AclPermission.ALLOW)),
    ])
    return core


def _final(bare: str, server_first: str, password: str) -> bytes:
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth = f"{bare},{server_first},{without_proof}".encode()
    sig = hmac.new(hashlib.sha512(client_key).digest(), auth, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def _req(api_key: int, version: int, **fields):
    return build(request_class(api_key, version), **fields)


async def _scram(client: WireClient, password: str) -> object:
    assert (await client.call(_req(17, 1, mechanism=MECH))).error_code == ErrorCode.none
    bare = "n=alice,r=clientnonce"
    first = await client.call(_req(36, 2, auth_bytes=f"n,,{bare}".encode()))
    assert first.error_code == ErrorCode.none
    return await client.call(_req(36, 2, auth_bytes=_final(bare, first.auth_bytes.decode(), password)))


def _run(body, authorizer: bool = True):
    async def main():
        core = _core()
        auth = Authorizer(core.image, frozenset(), False) if authorizer else None
        listener = await start_kafka_listener(core, "127.0.0.1", 0, security=SECURITY, authorizer=auth)
        core.set_port(listener.port)
        try:
            client = await WireClient.connect(listener.port)
            try:
                await body(client)
            finally:
                await client.close()
        finally:
            await listener.close()
    asyncio.run(main())


@pytest.mark.timeout(30)
def test_metadata_before_authentication_closes_the_connection():
    async def body(client):
        versions = await client.call(sample_request(18, 3))  # allowed before authentication
        assert versions.error_code == ErrorCode.none
        await client.send(sample_request(3, 12))
        assert await client.read_frame(timeout=5) is None
    _run(body)


@pytest.mark.timeout(30)
def test_scram_then_authorized_as_the_user():
    async def body(client):
        final = await _scram(client, "pw")
        assert final.error_code == ErrorCode.none and final.auth_bytes.startswith(b"v=")
        # alice may WRITE t (ACL) but nothing else: Produce to u is refused, Produce to t is not.
        produce = sample_request(0, 9, topic="u")
        response = await client.call(produce)
        assert response.responses[0].partition_responses[0].error_code == ErrorCode.topic_authorization_failed
        ok = await client.call(sample_request(0, 9, topic="t"))
        assert ok.responses[0].partition_responses[0].error_code != ErrorCode.topic_authorization_failed
        cluster = await client.call(sample_request(60, 1))
        assert cluster.error_code == ErrorCode.cluster_authorization_failed
    _run(body)


@pytest.mark.timeout(30)
def test_wrong_password_is_refused_and_closed():
    async def body(client):
        final = await _scram(client, "not-the-password")
        assert final.error_code == ErrorCode.sasl_authentication_failed
        assert await client.read_frame(timeout=5) is None
    _run(body)


@pytest.mark.timeout(30)
def test_unknown_mechanism_is_refused():
    async def body(client):
        reply = await client.call(_req(17, 1, mechanism="GSSAPI"))
        assert reply.error_code == ErrorCode.unsupported_sasl_mechanism and MECH in reply.mechanisms
        assert await client.read_frame(timeout=5) is None
    _run(body)


@pytest.mark.timeout(30)
def test_plain_over_scram_credentials_and_v0_raw_tokens():
    async def body(client):
        assert (await client.call(_req(17, 0, mechanism="PLAIN"))).error_code == ErrorCode.none
        token = b"\0alice\0pw"
        await client.send_raw(struct.pack(">i", len(token)) + token)
        assert await client.read_frame() == b""  # an empty raw token: authenticated
        reply = await client.call(sample_request(0, 9, topic="t"))
        assert reply.responses[0].partition_responses[0].error_code != ErrorCode.topic_authorization_failed
    _run(body)


@pytest.mark.timeout(30)
def test_no_authorizer_allows_an_authenticated_user_everything():
    async def body(client):
        assert (await _scram(client, "pw")).error_code == ErrorCode.none
        reply = await client.call(sample_request(0, 9, topic="u"))
        assert reply.responses[0].partition_responses[0].error_code != ErrorCode.topic_authorization_failed
        cluster = await client.call(sample_request(60, 1))
        assert cluster.error_code == ErrorCode.none
    _run(body, authorizer=False)
