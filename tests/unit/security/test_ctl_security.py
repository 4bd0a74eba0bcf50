"""Controller decisions for SCRAM users and ACLs: records and per-item results."""

from __future__ import annotations

import itertools

from cluster.errors import ErrorCode
from cluster.image import MetadataImage, replay_all
from cluster.records import AclRecord, RemoveAcl, RemoveScramCredential, ScramCredentialRecord
from cluster.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
)
from cluster.security.scram import credential_from_password, salted_password
from controller.security import ScramDeletion, ScramUpsertion, alter_scram, create_acls, delete_acls


def upsert(user, mechanism="SCRAM-SHA-512", iterations=4096, password="pw"):
    salted = salted_password("SCRAM-SHA-512", password, b"salt", max(iterations, 1))
    return ScramUpsertion(user, mechanism, iterations, b"salt", salted)


def test_alter_scram_stores_keys_not_password():
    records, results = alter_scram(MetadataImage(), [], [upsert("alice")])
    assert [r.error for r in results] == [ErrorCode.none]
    (record,) = records
    assert isinstance(record, ScramCredentialRecord)
    expected = credential_from_password("SCRAM-SHA-512", "pw", b"salt", 4096)
    assert (record.stored_key, record.server_key) == (expected.stored_key, expected.server_key)
    assert b"pw" not in record.stored_key + record.server_key + record.salt


def test_alter_scram_per_user_errors():
    image = replay_all(MetadataImage(), alter_scram(MetadataImage(), [], [upsert("alice")])[0])
    records, results = alter_scram(
        image,
        [ScramDeletion("alice", "SCRAM-SHA-512"), ScramDeletion("bob", "SCRAM-SHA-256")],
        [upsert("carol", iterations=10), upsert("dave", mechanism="MD5"), upsert("erin"), upsert("erin")],
    )
    by_user = {r.name: r.error for r in results}
    assert by_user == {"alice": ErrorCode.none, "bob": ErrorCode.resource_not_found,
                       "carol": ErrorCode.unacceptable_credential, "dave": ErrorCode.unsupported_sasl_mechanism,
                       "erin": ErrorCode.duplicate_resource}
    assert records == [RemoveScramCredential("alice", "SCRAM-SHA-512")]


def binding(principal="User:alice", op=AclOperation.READ, name="orders"):
    return AclBinding(ResourceType.TOPIC, name, PatternType.LITERAL, principal, "*", op, AclPermission.ALLOW)


def test_create_and_delete_acls():
    ids = (bytes([i]) * 16 for i in itertools.count(1))
    records, results = create_acls(MetadataImage(), [binding(), binding(), binding("bob")], lambda: next(ids))
    # The duplicate in one request is stored once; the invalid principal fails alone.
    assert [r.error for r in results] == [ErrorCode.none, ErrorCode.none, ErrorCode.invalid_request]
    assert len(records) == 1 and isinstance(records[0], AclRecord)
    image = replay_all(MetadataImage(), records)
    again, results = create_acls(image, [binding(), binding("User:bob", AclOperation.WRITE)], lambda: next(ids))
    assert len(again) == 1 and all(r.error == ErrorCode.none for r in results)
    image = replay_all(image, again)
    removed, matches = delete_acls(image, [AclBindingFilter(principal="User:bob"), AclBindingFilter()])
    assert [len(m) for m in matches] == [1, 2]
    assert sorted(removed, key=lambda r: r.acl_id) == [RemoveAcl(b"\x01" * 16), RemoveAcl(b"\x02" * 16)]
    assert replay_all(image, removed).acls == {}
