"""Errors raised by the client: the server's JSON errors, typed, and connection failures."""

from __future__ import annotations

from typing import Any, Dict, Optional


class NasError(Exception):
    """Base class of every error this client raises."""


class NasConnectionError(NasError):
    """No server answered at the URL (refused, unresolvable, or timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        """The URL that was tried."""
        self.reason = reason
        """What the HTTP library said."""
        super().__init__(f"cannot reach the nas server at {url}: {reason}")


class ApiError(NasError):
    """The server answered with an error: its HTTP status and its JSON error body.

    The body is ``{"error": {"code", "message", "field"?}}``; ``str(error)`` is
    ``"field: message"`` when the server named a field.
    """

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None) -> None:
        self.status = status
        """The HTTP status (4xx or 5xx)."""
        self.code = code
        """The server's error code (``invalid_spec``, ``not_found``, ``conflict`` ...)."""
        self.message = message
        """The server's message."""
        self.field = field
        """The field of the request at fault, when the server named one."""
        super().__init__(f"{field}: {message}" if field else message)


class BadRequestError(ApiError):
    """400: a malformed body, query or cursor."""


class UnauthorizedError(ApiError):
    """401: a missing or wrong token (see ``Client(token=...)`` and ``NAS_TOKEN``)."""


class NotFoundError(ApiError):
    """404: no search, trial, dataset or zoo entry with that id or name."""


class ConflictError(ApiError):
    """409: not possible in the current state (cancelling an ended search ...)."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's limit."""


class SpecError(ApiError):
    """422: the server refused a spec or settings; ``field`` names the part at fault."""


class ServerError(ApiError):
    """5xx: the server failed; its log says why."""


_BY_STATUS = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: SpecError,
}


def error_from_response(status: int, body: Any, fallback: str) -> ApiError:
    """The typed error for an HTTP error status and its (decoded JSON) body."""
    detail: Dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
    code = str(detail.get("code") or f"http_{status}")
    message = str(detail.get("message") or fallback or f"HTTP {status}")
    field = detail.get("field")
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, code, message, str(field) if field is not None else None)
