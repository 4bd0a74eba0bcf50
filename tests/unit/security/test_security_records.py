"""SCRAM credential and ACL records: replay, snapshot round trip, codec round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster import codec
from cluster.image import MetadataImage, ReplayError, image_from_records, image_to_records, replay_all
from cluster.records import AclRecord, RemoveAcl, RemoveScramCredential, ScramCredentialRecord
from cluster.security.acl import AclOperation, AclPermission, PatternType, ResourceType

A1, A2 = b"\x01" * 16, b"\x02" * 16


def cred(user="alice", mechanism="SCRAM-SHA-512", salt=b"s1"):
    return ScramCredentialRecord(user, mechanism, salt, b"stored", b"server", 4096)


def acl(acl_id=A1, principal="User:alice"):
    return AclRecord(acl_id, 2, "orders", 3, principal, "*", 3, 3)


def test_scram_replace_and_remove():
    image = replay_all(MetadataImage(), [cred(), cred(mechanism="SCRAM-SHA-256"), cred(salt=b"s2")])
    assert image.scram_credential("alice", "SCRAM-SHA-512").salt == b"s2"
    assert set(image.scram["alice"]) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    image = replay_all(image, [RemoveScramCredential("alice", "SCRAM-SHA-256")])
    assert set(image.scram["alice"]) == {"SCRAM-SHA-512"}
    image = replay_all(image, [RemoveScramCredential("alice", "SCRAM-SHA-512")])
    assert "alice" not in image.scram and image.scram_credential("alice", "SCRAM-SHA-512") is None
    with pytest.raises(ReplayError):
        replay_all(image, [RemoveScramCredential("alice", "SCRAM-SHA-512")])


def test_acl_add_remove():
    image = replay_all(MetadataImage(), [acl(), acl(A2, "User:bob")])
    binding = image.acls[A1]
    assert (binding.resource_type, binding.pattern_type, binding.operation, binding.permission) == (
        ResourceType.TOPIC, PatternType.LITERAL, AclOperation.READ, AclPermission.ALLOW)
    image = replay_all(image, [RemoveAcl(A1)])
    assert list(image.acls) == [A2]
    with pytest.raises(ReplayError):
        replay_all(image, [RemoveAcl(A1)])
    with pytest.raises(ReplayError):
        replay_all(image, [acl(A2)])


def test_snapshot_keeps_credentials_and_acls():
    image = replay_all(MetadataImage(), [cred(), cred("bob", "SCRAM-SHA-256"), acl(), acl(A2, "User:*")])
    data = codec.encode_snapshot(image.offset, image_to_records(image), [])
    offset, records, _ = codec.decode_snapshot(data)
    assert image_from_records(records, offset) == image


records = st.one_of(
    st.builds(ScramCredentialRecord, st.text(max_size=5), st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512"]),
              st.binary(max_size=8), st.binary(max_size=8), st.binary(max_size=8), st.integers(0, 2**31 - 1)),
    st.builds(RemoveScramCredential, st.text(max_size=5), st.text(max_size=5)),
    st.builds(AclRecord, st.binary(min_size=16, max_size=16), st.integers(0, 7), st.text(max_size=5),
              st.integers(0, 4), st.text(max_size=5), st.text(max_size=5), st.integers(0, 14), st.integers(0, 3)),
    st.builds(RemoveAcl, st.binary(min_size=16, max_size=16)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(records, max_size=8))
def test_codec_round_trip(rs):
    assert codec.decode_command(codec.encode_command("r", 1, rs)) == ("r", 1, rs)
