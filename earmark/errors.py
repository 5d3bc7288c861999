"""Errors are part of the interface: each names what was wrong and, where it can, the fix.

The web layer maps them to status codes (`http_status`), the CLI prints them and exits non-zero.
"""

from __future__ import annotations


class EarmarkError(Exception):
    """Base class of every error earmark reports to a user."""

    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message


class ConfigError(EarmarkError):
    """Settings or workspace files are missing or invalid."""

    http_status = 500


class SchemaError(EarmarkError):
    """The database is not migrated to the version this code needs."""

    http_status = 503


class InvalidInput(EarmarkError):
    """Input failed validation; `field` names the offending field."""

    http_status = 422


class InvalidAudio(InvalidInput):
    """Audio bytes that cannot be accepted (unreadable, too long, wrong rate...)."""


class TooLarge(InvalidInput):
    http_status = 413


class Conflict(EarmarkError):
    """The change contradicts what is stored (same id, different content; concurrent edit)."""

    http_status = 409


class NotFound(EarmarkError):
    http_status = 404


class PermissionDenied(EarmarkError):
    http_status = 403


class AuthenticationFailed(EarmarkError):
    http_status = 401


class LeaseExpired(Conflict):
    """A reviewer acted on an assignment whose lease ran out."""


class Withdrawn(Conflict):
    """The clip left the queue (consent withdrawn, erased) while a reviewer held it."""


class KeyUnavailable(EarmarkError):
    """A workspace or account key is missing or does not open the data."""

    http_status = 500


class BlobDamaged(KeyUnavailable):
    """A stored blob is not an earmark blob, or fails its authentication: changed or damaged on
    disk (a clip held for it says so, not that a key is missing)."""


class KeyRotated(KeyUnavailable):
    """Another process rotated the workspace key and this one cannot re-read it (a key from the
    environment): it must be restarted with the new key. Nothing was stored."""

    http_status = 503
