"""What a port declares, every adapter and every fake implements: callers use a capability
without asking whether it is there (no ``hasattr``), so a missing one must fail here, not
silently switch a feature off. Names only; their signatures are the type checker's to hold."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
from typing_extensions import get_protocol_members

from bootstrap import SystemClock
from domain import ports
from domain.queries import ReadModel
from infrastructure.cache import InMemoryCache, RedisCache
from infrastructure.db import repositories as sql
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.uow import SqlUnitOfWork
from infrastructure.events import InMemoryEventBus, RedisEventBus
from infrastructure.exports import FileExportStore
from infrastructure.queue import ArqJobQueue, InProcessJobQueue
from infrastructure.vk.gateway import HttpVkGateway
from infrastructure.vk.unconfigured import UnconfiguredVkGateway
from tests import fakes

IMPLEMENTATIONS = {
    ports.VkGateway: [HttpVkGateway, UnconfiguredVkGateway],
    ReadModel: [SqlReadModel],
    ports.ExportStore: [FileExportStore],
    ports.UnitOfWork: [SqlUnitOfWork, fakes.FakeUnitOfWork],
    ports.GroupRepository: [sql.SqlGroupRepository, fakes.FakeGroupRepository],
    ports.PostRepository: [sql.SqlPostRepository, fakes.FakePostRepository],
    ports.CommentRepository: [sql.SqlCommentRepository, fakes.FakeCommentRepository],
    ports.AuthorRepository: [sql.SqlAuthorRepository, fakes.FakeAuthorRepository],
    ports.KeywordRepository: [sql.SqlKeywordRepository, fakes.FakeKeywordRepository],
    ports.MatchRepository: [sql.SqlMatchRepository, fakes.FakeMatchRepository],
    ports.TaskRepository: [sql.SqlTaskRepository, fakes.FakeTaskRepository],
    ports.ApiTokenRepository: [sql.SqlApiTokenRepository, fakes.FakeApiTokenRepository],
    ports.JobQueue: [InProcessJobQueue, ArqJobQueue],
    ports.EventBus: [InMemoryEventBus, RedisEventBus],
    ports.Cache: [InMemoryCache, RedisCache],
    ports.Clock: [SystemClock, fakes.FakeClock],
}


def _members(cls: type) -> set[str]:
    """What ``cls`` has: its attributes, its annotations, and what its ``__init__`` or
    ``__aenter__`` assigns to ``self`` (the repositories of a unit of work, a gateway's stats)."""
    found = set(dir(cls))
    for klass in cls.__mro__:
        found |= set(getattr(klass, "__annotations__", {}))
        for method in ("__init__", "__aenter__"):
            function = vars(klass).get(method)
            if not inspect.isfunction(function):  # not written here (object's own, a C slot)
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            found |= {
                node.attr for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                and isinstance(node.ctx, ast.Store)
            }
    return found


@pytest.mark.parametrize(
    ("port", "implementation"),
    [(port, impl) for port, impls in IMPLEMENTATIONS.items() for impl in impls],
    ids=lambda value: value.__name__,
)
def test_every_implementation_has_everything_its_port_declares(port: type, implementation: type) -> None:
    assert sorted(get_protocol_members(port) - _members(implementation)) == []


def test_a_missing_capability_is_found() -> None:
    class Partial:
        async def token_states(self) -> list:
            return []

    assert {"stats", "aclose", "wall_page"} <= get_protocol_members(ports.VkGateway) - _members(Partial)
