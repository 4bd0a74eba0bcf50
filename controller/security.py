"""SCRAM users and ACLs: pure functions image -> (records, results).

Kafka's `ScramControlManager.alterUserScramCredentials` (KIP-554) and `AclControlManager`
(createAcls / deleteAcls). Each item of a request succeeds or fails on its own, as in Kafka; the
records of the successful items are committed together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cluster.errors import ErrorCode
from cluster.image import MetadataImage
from cluster.records import AclRecord, Record, RemoveAcl, RemoveScramCredential, ScramCredentialRecord
from cluster.security.acl import AclBinding, AclBindingFilter, validate_binding
from cluster.security.scram import ITERATIONS_MAX, ITERATIONS_MIN, MECHANISMS, credential_from_salted

__all__ = [
    "ACLS_MAX",
    "ItemResult",
    "ScramDeletion",
    "ScramUpsertion",
    "alter_scram",
    "create_acls",
    "delete_acls",
]

# A cap on stored ACLs and users, so a full image always fits one gRPC message.
ACLS_MAX = 10_000
USERS_MAX = 10_000
USER_NAME_CHARS_MAX = 255
SALT_BYTES_MAX = 1024


@dataclass(frozen=True, slots=True)
class ScramUpsertion:
    user: str
    mechanism: str
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(frozen=True, slots=True)
class ScramDeletion:
    user: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    name: str
    error: ErrorCode = ErrorCode.none
    message: str = ""


def alter_scram(image: MetadataImage, deletions: Sequence[ScramDeletion],
                upsertions: Sequence[ScramUpsertion]) -> tuple[list[Record], list[ItemResult]]:
    """KIP-554: one result per user; a user named twice for one mechanism fails (DUPLICATE_RESOURCE)."""
    records: list[Record] = []
    results: dict[str, ItemResult] = {}
    seen: dict[tuple[str, str], int] = {}
    for user, mechanism in [(d.user, d.mechanism) for d in deletions] + [(u.user, u.mechanism) for u in upsertions]:
        seen[(user, mechanism)] = seen.get((user, mechanism), 0) + 1
    users_after = set(image.scram)

    def fail(user: str, error: ErrorCode, message: str) -> None:
        if user not in results:
            results[user] = ItemResult(user, error, message)

    for d in deletions:
        if not d.user:
            fail(d.user, ErrorCode.unacceptable_credential, "the user name is empty")
        elif d.mechanism not in MECHANISMS:
            fail(d.user, ErrorCode.unsupported_sasl_mechanism, f"unknown mechanism {d.mechanism!r}")
        elif seen[(d.user, d.mechanism)] > 1:
            fail(d.user, ErrorCode.duplicate_resource, f"{d.mechanism} for {d.user!r} appears more than once")
        elif image.scram_credential(d.user, d.mechanism) is None:
            fail(d.user, ErrorCode.resource_not_found, f"user {d.user!r} has no {d.mechanism} credential")
    for u in upsertions:
        if not u.user or len(u.user) > USER_NAME_CHARS_MAX:
            fail(u.user, ErrorCode.unacceptable_credential, f"user names are 1-{USER_NAME_CHARS_MAX} characters")
        elif u.mechanism not in MECHANISMS:
            fail(u.user, ErrorCode.unsupported_sasl_mechanism, f"unknown mechanism {u.mechanism!r}")
        elif seen[(u.user, u.mechanism)] > 1:
            fail(u.user, ErrorCode.duplicate_resource, f"{u.mechanism} for {u.user!r} appears more than once")
        elif not ITERATIONS_MIN <= u.iterations <= ITERATIONS_MAX:
            fail(u.user, ErrorCode.unacceptable_credential,
                 f"iterations must be {ITERATIONS_MIN}..{ITERATIONS_MAX}, not {u.iterations}")
        elif not u.salt or len(u.salt) > SALT_BYTES_MAX or not u.salted_password:
            fail(u.user, ErrorCode.unacceptable_credential, "the salt and the salted password must not be empty")
        elif u.user not in users_after and len(users_after) >= USERS_MAX:
            fail(u.user, ErrorCode.unacceptable_credential, f"at most {USERS_MAX} SCRAM users")
        else:
            users_after.add(u.user)
    for d in deletions:
        if d.user not in results:
            records.append(RemoveScramCredential(d.user, d.mechanism))
    for u in upsertions:
        if u.user not in results:
            c = credential_from_salted(u.mechanism, u.salted_password, u.salt, u.iterations)
            records.append(ScramCredentialRecord(u.user, u.mechanism, c.salt, c.stored_key, c.server_key,
                                                 c.iterations))
    # A user with a failed item changes nothing (Kafka answers per user).
    failed = set(results)
    records = [r for r in records if getattr(r, "user", None) not in failed]
    order = list(dict.fromkeys([*(d.user for d in deletions), *(u.user for u in upsertions)]))
    return records, [results.get(user, ItemResult(user)) for user in order]


def _record(acl_id: bytes, b: AclBinding) -> AclRecord:
    return AclRecord(acl_id, int(b.resource_type), b.resource_name, int(b.pattern_type), b.principal, b.host,
                     int(b.operation), int(b.permission))


def create_acls(image: MetadataImage, bindings: Sequence[AclBinding],
                new_id: Callable[[], bytes]) -> tuple[list[Record], list[ItemResult]]:
    """One result per binding, in order; an ACL that already exists succeeds without a new record."""
    existing = set(image.acls.values())
    records: list[Record] = []
    results: list[ItemResult] = []
    count = len(image.acls)
    for b in bindings:
        reason = validate_binding(b)
        if reason:
            results.append(ItemResult("", ErrorCode.invalid_request, reason))
            continue
        if b in existing:
            results.append(ItemResult(""))
            continue
        if count >= ACLS_MAX:
            results.append(ItemResult("", ErrorCode.invalid_request, f"at most {ACLS_MAX} ACLs"))
            continue
        acl_id = new_id()
        assert len(acl_id) == 16 and acl_id not in image.acls, "a fresh 16-byte ACL id"
        records.append(_record(acl_id, b))
        existing.add(b)
        count += 1
        results.append(ItemResult(""))
    return records, results


def delete_acls(image: MetadataImage, filters: Sequence[AclBindingFilter]
                ) -> tuple[list[Record], list[list[AclBinding]]]:
    """For each filter, the ACLs it removes (an ACL matched by two filters is removed once)."""
    removed: set[bytes] = set()
    records: list[Record] = []
    matches: list[list[AclBinding]] = []
    for f in filters:
        matched = []
        for acl_id, b in sorted(image.acls.items()):
            if f.matches(b):
                matched.append(b)
                if acl_id not in removed:
                    removed.add(acl_id)
                    records.append(RemoveAcl(acl_id))
        matches.append(matched)
    return records, matches
