"""VK when no token is configured: the API still serves what is stored, and every VK call
answers ``VkNotConfigured`` saying which setting is missing, instead of the process refusing
to start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from domain.errors import VkNotConfigured
from domain.vk import GatewayStats, TokenState

MESSAGE = "no VK tokens configured: set VKCP_VK_TOKENS (or VKCP_VK_SANDBOX=1 for the offline demo)"


class UnconfiguredVkGateway:
    """``domain.ports.VkGateway`` with no tokens: no pool to show, nothing sent."""

    def __init__(self) -> None:
        self.stats = GatewayStats()

    async def token_states(self) -> list[TokenState]:
        return []

    async def aclose(self) -> None:
        pass

    def _refuse(self, *_args, **_kwargs) -> NoReturn:
        raise VkNotConfigured(MESSAGE)

    async def resolve_screen_name(self, screen_name: str) -> NoReturn:
        self._refuse()

    async def get_groups(self, group_ids: Sequence[int]) -> NoReturn:
        self._refuse()

    async def wall_page(self, owner_id: int, offset: int, count: int = 100) -> NoReturn:
        self._refuse()

    async def comments_page(self, owner_id: int, post_id: int, offset: int, count: int = 100, *,
                            start_comment_id: int | None = None) -> NoReturn:
        self._refuse()

    async def thread_page(self, owner_id: int, post_id: int, comment_id: int, offset: int, count: int = 100, *,
                          start_comment_id: int | None = None) -> NoReturn:
        self._refuse()

    async def get_users(self, user_ids: Sequence[int]) -> NoReturn:
        self._refuse()
