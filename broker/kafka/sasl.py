"""The server side of Kafka's SASL exchange on one connection, sans I/O.

Kafka's SaslServerAuthenticator, reduced to what Brook offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512):

    ApiVersions*  ->  SaslHandshake(mechanism)  ->  SaslAuthenticate(token)+  ->  authenticated
                                   \\ v0: the tokens follow as raw size-prefixed frames, no header

Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are accepted; anything
else closes the connection. A failed authentication is answered with SASL_AUTHENTICATION_FAILED and
then the connection is closed, as in Kafka. Credentials come from `lookup(user, mechanism)` (the
broker's metadata image); the server nonce from `new_nonce()`; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from cluster.security.scram import (
    MECHANISMS,
    ScramCredential,
    ScramError,
    ScramServer,
    check_plain,
    parse_plain,
)

__all__ = ["SaslResult", "SaslState"]

HANDSHAKE_KEY = 17
AUTHENTICATE_KEY = 36
API_VERSIONS_KEY = 18


@dataclass(frozen=True, slots=True)
class SaslResult:
    error: ErrorCode
    message: str = ""
    token: bytes = b""
    close: bool = False     # close the connection after sending this answer


class SaslState:
    """One connection's SASL state. `user` is set once `authenticated`."""

    def __init__(self, mechanisms: tuple[str, ...], lookup: Callable[[str, str], ScramCredential | None],
                 users: Callable[[str], list[ScramCredential]], new_nonce: Callable[[], str]) -> None:
        self.mechanisms = mechanisms
        self.lookup = lookup
        self.users = users
        self.new_nonce = new_nonce
        self.mechanism: str | None = None
        self.raw_tokens = False      # handshake v0: tokens come as raw frames
        self.authenticated = False
        self.user: str | None = None
        self._scram: ScramServer | None = None

    def allows_before_auth(self, api_key: int) -> bool:
        return api_key in (API_VERSIONS_KEY, HANDSHAKE_KEY, AUTHENTICATE_KEY)

    def handshake(self, mechanism: str, api_version: int) -> SaslResult:
        if self.authenticated or self.mechanism is not None:
            return SaslResult(ErrorCode.illegal_sasl_state, "SASL handshake already done", close=True)
        if mechanism not in self.mechanisms:
            return SaslResult(ErrorCode.unsupported_sasl_mechanism,
                              f"mechanism {mechanism!r} is not enabled", close=True)
        self.mechanism = mechanism
        self.raw_tokens = api_version == 0
        if mechanism in MECHANISMS:
            self._scram = ScramServer(mechanism, lambda user: self.lookup(user, mechanism), self.new_nonce())
        return SaslResult(ErrorCode.none)

    def authenticate(self, token: bytes) -> SaslResult:
        if self.authenticated or self.mechanism is None:
            return SaslResult(ErrorCode.illegal_sasl_state, "SaslAuthenticate without a handshake", close=True)
        try:
            if self.mechanism == "PLAIN":
                user, password = parse_plain(token)
                if not check_plain(self.users(user), password):
                    raise ScramError("Authentication failed: Invalid username or password")
                self._done(user)
                return SaslResult(ErrorCode.none)
            scram = self._scram
            assert scram is not None
            reply = scram.step(token)
            if scram.authenticated:
                assert scram.user is not None
                self._done(scram.user)
            return SaslResult(ErrorCode.none, token=reply)
        except ScramError as e:
            return SaslResult(ErrorCode.sasl_authentication_failed, str(e), close=True)

    def _done(self, user: str) -> None:
        self.authenticated = True
        self.user = user
        self.raw_tokens = False
        self._scram = None
