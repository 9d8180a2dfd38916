"""The domain's error hierarchy.

Adapters translate library and VK errors into these; the API maps each class to the code its
clients see (``graphql_api.codes``: the vocabulary is the API's). Messages are shown to users,
so they never contain a token.
"""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    """Something the caller can be told about (a bug is any other exception)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """No such object: an unknown id, or one that cannot exist."""


class InvalidInput(DomainError):
    """A value the caller gave is wrong (out of range, malformed, too long); ``field`` names it."""


class InvalidReference(InvalidInput):
    """A group reference that is neither an id, a screen name nor a VK URL."""


class Conflict(DomainError):
    """The change contradicts what is stored."""


class Unavailable(DomainError):
    """A dependency (the database, Redis) is unreachable or dropped the connection. Nothing the
    caller did wrong: the same request or step succeeds once it is back. Adapters raise it in
    place of their libraries' connection errors, deadlocks and serialization failures."""

    def __init__(self, message: str, *, dependency: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.dependency = dependency


class VkError(DomainError):
    """Anything VK answered with an error; ``vk_code`` is VK's ``error_code`` when known."""

    def __init__(self, message: str, *, vk_code: int | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.vk_code = vk_code


class VkAccessDenied(VkError):
    """The community (or post) is private, closed, blocked or deleted: not retryable."""



class VkCommentsClosed(VkError):
    """Comments of one post are closed (error 212): skip that post, go on."""



class VkNotFound(VkError):
    """VK knows no such community or post."""


class VkRateLimited(VkError):
    """Every token is parked or spent for now (daily quota, captcha)."""


class VkTokensResting(VkRateLimited):
    """Every token rests (quota or captcha) until ``until``: work waits for then, it does not
    fail. The gateway raises it; the task runner turns it into a wait."""

    def __init__(self, message: str, *, until: datetime, vk_code: int | None = None) -> None:
        super().__init__(message, vk_code=vk_code)
        self.until = until


class VkAuthFailed(VkError):
    """No usable token: all were rejected by VK (expired, revoked)."""



class VkUnavailable(VkError):
    """VK kept failing after the bounded retries (network, 5xx, internal errors)."""



class VkNotConfigured(VkUnavailable):
    """No VK token is configured: nothing can be read from VK until an operator adds one."""


class TaskCancelled(DomainError):
    """Raised inside a running job when its task was cancelled; the runner records CANCELLED."""

