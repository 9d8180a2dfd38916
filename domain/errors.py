"""The domain's error hierarchy.

Adapters translate library and VK errors into these; the API maps each to a ``UserError`` code
(``DomainError.code``). Messages are shown to users, so they never contain a token.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "NOT_FOUND"


class InvalidInput(DomainError):
    code = "INVALID_INPUT"


class InvalidReference(InvalidInput):
    """A group reference that is neither an id, a screen name nor a VK URL."""

    code = "INVALID_REFERENCE"


class Conflict(DomainError):
    code = "CONFLICT"


class Unavailable(DomainError):
    """A dependency (the database, Redis) is unreachable or dropped the connection. Nothing the
    caller did wrong: the same request or step succeeds once it is back. Adapters raise it in
    place of their libraries' connection errors, deadlocks and serialization failures."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, dependency: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.dependency = dependency


class VkError(DomainError):
    """Anything VK answered with an error; ``vk_code`` is VK's ``error_code`` when known."""

    code = "VK_ERROR"

    def __init__(self, message: str, *, vk_code: int | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.vk_code = vk_code


class VkAccessDenied(VkError):
    """The community (or post) is private, closed, blocked or deleted: not retryable."""

    code = "VK_ACCESS_DENIED"


class VkCommentsClosed(VkError):
    """Comments of one post are closed (error 212): skip that post, go on."""

    code = "VK_COMMENTS_CLOSED"


class VkNotFound(VkError):
    code = "VK_NOT_FOUND"


class VkRateLimited(VkError):
    """Every token is parked or spent for now (daily quota, captcha)."""

    code = "VK_RATE_LIMITED"


class VkAuthFailed(VkError):
    """No usable token: all were rejected by VK (expired, revoked)."""

    code = "VK_AUTH_FAILED"


class VkUnavailable(VkError):
    """VK kept failing after the bounded retries (network, 5xx, internal errors)."""

    code = "VK_UNAVAILABLE"


class VkNotConfigured(VkUnavailable):
    """No VK token is configured: nothing can be read from VK until an operator adds one."""


class TaskCancelled(DomainError):
    """Raised inside a running job when its task was cancelled; the runner records CANCELLED."""

    code = "CANCELLED"
