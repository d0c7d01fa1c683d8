"""One error tree for the whole service, rendered at the edge (API JSON, CLI line).

Services raise these, never HTTPException, so the same failure reads the same in every front end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Location:
    """Where a problem sits in an input: file, line, field (any may be unknown)."""

    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = [self.file or ""]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(self.field)
        return ", ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field}


@dataclass(frozen=True)
class Issue:
    """One problem found while reading an input; errors reject it, warnings do not."""

    message: str
    location: Location | None = None
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "severity": self.severity,
            "location": self.location.as_dict() if self.location else None,
        }


@dataclass
class KbmapError(Exception):
    """Base of every error a user can cause or meet; carries an HTTP status and a code."""

    message: str
    location: Location | None = None
    issues: list[Issue] = field(default_factory=list)
    status: ClassVar[int] = 400
    code: ClassVar[str] = "error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        more = f" (and {len(self.issues) - 1} more problems)" if len(self.issues) > 1 else ""
        return f"{where}{self.message}{more}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "location": self.location.as_dict() if self.location else None,
                "issues": [i.as_dict() for i in self.issues[:200]],
            }
        }


class NotFound(KbmapError):
    status = 404
    code = "not_found"


class Conflict(KbmapError):
    status = 409
    code = "conflict"


class InvalidInput(KbmapError):
    status = 422
    code = "invalid_input"


class TooLarge(KbmapError):
    status = 413
    code = "too_large"


class Unauthorized(KbmapError):
    status = 401
    code = "unauthorized"


class Forbidden(KbmapError):
    status = 403
    code = "forbidden"


class Unavailable(KbmapError):
    """An outside dependency (download server, database) did not answer as needed."""

    status = 503
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or opened (down, wrong address, unreadable file)."""

    code = "database_unavailable"


class NoDatabase(Unavailable):
    """A read found no database where the settings point; reads never create one."""

    code = "no_database"


class StorageFull(KbmapError):
    """The disk under the database is full; the write was rolled back."""

    status = 507
    code = "storage_full"
