"""The error tree shared by every role.

    BrookError                  base; carries a Kafka error code and a one-line message
    ├── ConfigError             a bad configuration (key, value, what is allowed)
    ├── NotControllerError      a write reached a controller that is not active (carries the leader hint)
    ├── StaleBrokerEpochError   a request carried a broker epoch that is no longer current
    └── LogError                a partition-log failure with the matching Kafka error code

Errors are data at the boundaries: the Kafka listener answers with `code`, gRPC answers with a status
plus `code`, and the CLI prints `message` on one line and exits non-zero.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = [
    "BrookError",
    "ConfigError",
    "ErrorCode",
    "LogError",
    "NotControllerError",
    "StaleBrokerEpochError",
]


class BrookError(Exception):
    """An expected, reportable failure. `code` is a Kafka error code."""

    code: ErrorCode = ErrorCode.unknown_server_error

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code.name


class ConfigError(BrookError):
    code = ErrorCode.invalid_config


class NotControllerError(BrookError):
    code = ErrorCode.not_controller

    def __init__(self, message: str, leader_hint: str | None = None) -> None:
        super().__init__(message)
        self.leader_hint = leader_hint


class StaleBrokerEpochError(BrookError):
    code = ErrorCode.stale_broker_epoch


class LogError(BrookError):
    """A partition-log failure: CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE, OFFSET_OUT_OF_RANGE..."""
