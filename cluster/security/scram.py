"""SCRAM-SHA-256/512 (RFC 5802, RFC 7677) as Kafka uses it, plus SASL PLAIN checked against the same
credentials. Pure: the caller passes the server nonce and looks credentials up in its image.

A credential is what Kafka's ScramCredential holds: salt, StoredKey = H(HMAC(SaltedPassword,
"Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"), and the iteration count. The password
and the salted password are never stored. KIP-554's AlterUserScramCredentials sends the salted
password (the client runs the PBKDF2), from which `credential_from_salted` derives the keys.

The server side of one exchange is `ScramServer`: `first(client_first)` -> server_first, then
`final(client_final)` -> server_final; any failure raises `ScramError` with a message the server may
return to the client (it never tells an unknown user from a wrong password).

Not supported (as in Kafka): channel binding (`p=` GS2 flag) and authzid differing from the user.
Kafka's `tokenauth` extension (delegation tokens) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ITERATIONS_MAX",
    "ITERATIONS_MIN",
    "MECHANISMS",
    "ScramCredential",
    "ScramError",
    "ScramServer",
    "check_plain",
    "credential_from_password",
    "credential_from_salted",
    "parse_plain",
    "salted_password",
]

# Kafka's mechanism names and their codes in Describe/AlterUserScramCredentials (ScramMechanism.java).
MECHANISMS: dict[str, tuple[int, str]] = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
MECHANISM_BY_CODE = {code: name for name, (code, _) in MECHANISMS.items()}
# Kafka: ScramMechanism.minIterations() = 4096; KIP-554 caps the count at 16384.
ITERATIONS_MIN = 4096
ITERATIONS_MAX = 16384
# A client-first or client-final message longer than this is refused (they are < 300 bytes in practice).
MESSAGE_BYTES_MAX = 4096


class ScramError(Exception):
    """Authentication failed; the message is safe to send to the client."""


@dataclass(frozen=True, slots=True)
class ScramCredential:
    mechanism: str
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def _hash_name(mechanism: str) -> str:
    try:
        return MECHANISMS[mechanism][1]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}: expected {', '.join(MECHANISMS)}") from None


def _hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hash_name).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) = PBKDF2-HMAC (RFC 5802 section 2.2)."""
    return hashlib.pbkdf2_hmac(_hash_name(mechanism), password.encode("utf-8"), salt, iterations)


def credential_from_salted(mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    hash_name = _hash_name(mechanism)
    if not ITERATIONS_MIN <= iterations <= ITERATIONS_MAX:
        raise ValueError(f"iterations {iterations} outside {ITERATIONS_MIN}..{ITERATIONS_MAX}")
    if not salt:
        raise ValueError("the salt is empty")
    client_key = _hmac(hash_name, salted, b"Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = _hmac(hash_name, salted, b"Server Key")
    return ScramCredential(mechanism, salt, stored_key, server_key, iterations)


def credential_from_password(mechanism: str, password: str, salt: bytes, iterations: int) -> ScramCredential:
    return credential_from_salted(mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations)


def _attributes(message: str) -> list[tuple[str, str]]:
    out = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {part[:20]!r}")
        out.append((part[0], part[2:]))
    return out


def _saslname(text: str) -> str:
    # RFC 5802: ',' and '=' in a name are sent as =2C and =3D; any other '=' is an error.
    out = text.replace("=2C", ",").replace("=3D", "=")
    if "=" in text.replace("=2C", "").replace("=3D", ""):
        raise ScramError("malformed user name")
    return out


class ScramServer:
    """One SCRAM exchange, server side. `lookup(user)` returns the user's credential for this mechanism."""

    def __init__(self, mechanism: str, lookup: Callable[[str], ScramCredential | None], server_nonce: str) -> None:
        self.hash_name = _hash_name(mechanism)
        self.mechanism = mechanism
        self.lookup = lookup
        assert len(server_nonce) >= 16 and "," not in server_nonce, "the server nonce must be long and printable"
        self.server_nonce = server_nonce
        self.user: str | None = None
        self.authenticated = False
        self._credential: ScramCredential | None = None
        self._nonce = ""
        self._auth_prefix = ""
        self._state = "first"

    def first(self, client_first: bytes) -> bytes:
        if self._state != "first":
            raise ScramError("unexpected SCRAM client-first message")
        self._state = "failed"
        if len(client_first) > MESSAGE_BYTES_MAX:
            raise ScramError("SCRAM message too long")
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("SCRAM message is not UTF-8") from None
        gs2_flag, sep, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not sep or not sep2:
            raise ScramError("malformed SCRAM client-first message")
        if gs2_flag not in ("n", "y"):
            raise ScramError("channel binding is not supported")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise ScramError("malformed SCRAM client-first message")
        user = _saslname(attrs[0][1])
        if authzid and authzid != f"a={attrs[0][1]}":
            raise ScramError("an authorization id different from the user is not supported")
        if any(key == "t" or value.startswith("tokenauth") for key, value in attrs[2:]):
            raise ScramError("delegation tokens are not supported")
        client_nonce = attrs[1][1]
        if not client_nonce:
            raise ScramError("empty client nonce")
        credential = self.lookup(user)
        if credential is None or credential.mechanism != self.mechanism:
            raise ScramError("Authentication failed: Invalid user credentials")
        self.user = user
        self._credential = credential
        self._nonce = client_nonce + self.server_nonce
        server_first = f"r={self._nonce},s={base64.b64encode(credential.salt).decode()},i={credential.iterations}"
        self._auth_prefix = f"{bare},{server_first}"
        self._gs2_header = f"{gs2_flag},{authzid},"
        self._state = "final"
        return server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        if self._state != "final":
            raise ScramError("unexpected SCRAM client-final message")
        self._state = "failed"
        credential = self._credential
        assert credential is not None
        if len(client_final) > MESSAGE_BYTES_MAX:
            raise ScramError("SCRAM message too long")
        try:
            text = client_final.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("SCRAM message is not UTF-8") from None
        without_proof, sep, proof_attr = text.rpartition(",")
        if not sep or not proof_attr.startswith("p="):
            raise ScramError("malformed SCRAM client-final message")
        attrs = dict(_attributes(without_proof))
        expected_binding = base64.b64encode(self._gs2_header.encode()).decode()
        if attrs.get("c") != expected_binding:
            raise ScramError("invalid channel binding")
        # Kafka's ScramSaslServer checks that the nonce *ends with* the server-first nonce (librdkafka
        # before 2.1 sends the client nonce twice); the proof covers the message as sent either way.
        if not attrs.get("r", "").endswith(self._nonce):
            raise ScramError("invalid nonce")
        try:
            proof = base64.b64decode(proof_attr[2:], validate=True)
        except ValueError:
            raise ScramError("malformed client proof") from None
        auth_message = f"{self._auth_prefix},{without_proof}".encode()
        signature = _hmac(self.hash_name, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("Authentication failed: Invalid user credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(), credential.stored_key):
            raise ScramError("Authentication failed: Invalid user credentials")
        server_signature = _hmac(self.hash_name, credential.server_key, auth_message)
        self.authenticated = True
        self._state = "done"
        return f"v={base64.b64encode(server_signature).decode()}".encode()

    def step(self, message: bytes) -> bytes:
        return self.first(message) if self._state == "first" else self.final(message)

    @property
    def done(self) -> bool:
        return self._state in ("done", "failed")


def parse_plain(message: bytes) -> tuple[str, str]:
    """SASL PLAIN (RFC 4616): authzid NUL user NUL password -> (user, password)."""
    if len(message) > MESSAGE_BYTES_MAX:
        raise ScramError("PLAIN message too long")
    parts = message.split(b"\0")
    if len(parts) != 3:
        raise ScramError("malformed PLAIN message")
    try:
        authzid, user, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise ScramError("PLAIN message is not UTF-8") from None
    if not user or not password:
        raise ScramError("PLAIN user and password must not be empty")
    if authzid and authzid != user:
        raise ScramError("an authorization id different from the user is not supported")
    return user, password


def check_plain(credentials: list[ScramCredential], password: str) -> bool:
    """True when `password` matches any of the user's SCRAM credentials (PLAIN over the SCRAM store)."""
    ok = False
    for c in credentials:
        candidate = credential_from_password(c.mechanism, password, c.salt, c.iterations)
        ok |= hmac.compare_digest(candidate.stored_key, c.stored_key)
    return ok
