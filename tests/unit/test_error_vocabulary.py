"""The error vocabulary: every domain error a client can meet has a code of its own."""

from __future__ import annotations

import domain.errors
import domain.keywords
from domain.errors import DomainError, TaskCancelled
from graphql_api.codes import ErrorCode, code_of
from graphql_api.schema import schema


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_every_domain_error_maps_to_a_code() -> None:
    # A job's own signal, never shown to a client.
    shown = [cls for cls in _subclasses(DomainError) if cls is not TaskCancelled]
    assert domain.keywords.DuplicateKeyword in shown and domain.errors.VkNotConfigured in shown
    unmapped = [cls.__name__ for cls in shown if code_of(cls.__new__(cls)) is ErrorCode.INTERNAL_SERVER_ERROR]
    assert unmapped == []


def test_the_most_specific_class_wins() -> None:
    assert code_of(domain.errors.InvalidReference("x")) is ErrorCode.INVALID_REFERENCE
    assert code_of(domain.errors.InvalidInput("x")) is ErrorCode.BAD_USER_INPUT
    assert code_of(domain.keywords.DuplicateKeyword("x")) is ErrorCode.DUPLICATE
    assert code_of(domain.errors.VkNotConfigured("x")) is ErrorCode.VK_UNAVAILABLE


def test_the_schema_publishes_the_codes_as_their_wire_values() -> None:
    published = schema.get_type_by_name("ErrorCode")
    assert [v.name for v in published.values] == [v.value for v in published.values] == [c.value for c in ErrorCode]
    assert "code: ErrorCode!" in schema.as_str().split("type UserError {")[1].split("}")[0]
