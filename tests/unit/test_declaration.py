"""Every field of every declared type is on the fast path (a projected page writes it), or the
declaration says why not (``View.unprojected``): a field added without a way to write it — a
Float, a method, a relation no view declares — fails here rather than quietly taking comment
pages off the fast path (``vkcp_read_plan_fallbacks_total`` would count them, after the fact)."""

from __future__ import annotations

import dataclasses

import pytest
import strawberry
from graphql import GraphQLSchema

from domain import declaration
from domain.declaration import Field, Spelling
from graphql_api import plan
from graphql_api.declared import TYPES, camel
from graphql_api.schema import schema
from infrastructure.db.queries import projection_refusal


def unprojected(graphql_schema: GraphQLSchema) -> dict[str, str]:
    """``Type.field`` -> why a projected page would not write it, for every declared type."""
    found = {}
    for view in declaration.VIEWS.values():
        for name in graphql_schema.type_map[view.type_name].fields:  # type: ignore[union-attr]
            try:
                refused = projection_refusal(plan.projection_of_field(graphql_schema, view.type_name, name))
            except plan.Unsupported as e:
                refused = e.kind
            if refused is not None:
                found[f"{view.type_name}.{name}"] = refused
    return found


def listed() -> dict[str, str]:
    return {f"{v.type_name}.{camel(n)}": why for v in declaration.VIEWS.values() for n, why in v.unprojected.items()}


def test_every_field_of_every_declared_type_is_projected_or_listed_with_why_not() -> None:
    found = unprojected(schema._schema)
    assert set(found) == set(listed()), {k: v for k, v in found.items() if k not in listed()}
    assert all(listed().values())  # each with its reason
    # What is listed is few, and the console's review query asks none of it but `highlights`,
    # which it includes only when the filter has a rule-language query.
    assert set(found) == {"Group.monitoring", "Group.commentsCount", "Keyword.matchesCount", "Comment.highlights"}


def test_every_api_type_of_a_view_is_made_from_its_declaration() -> None:
    for view in declaration.VIEWS.values():
        made = TYPES[view.name]
        assert made.VIEW is view
        fields = schema._schema.type_map[view.type_name].fields  # type: ignore[union-attr]
        declared = {"id" if f.spelling is Spelling.GLOBAL_ID else camel(f.name) for f in view.fields if f.exposed
                    or f.spelling is Spelling.GLOBAL_ID}
        declared |= {camel(r.name) for r in view.relations}
        assert declared <= set(fields), view.name
        assert set(fields) - declared <= {camel(n) for n in view.unprojected}, view.name


@strawberry.type(name="Comment")
class Changed:
    """A Comment with a Float and a method more."""

    vk_id: int
    score: float

    @strawberry.field
    def shout(self) -> str:
        return "!"


@strawberry.type(name="Query")
class ChangedQuery:
    comment: Changed | None = None


def test_a_float_or_an_undeclared_method_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the first test would say of a Comment with a declared Float and a method the
    declaration does not know."""

    comment = dataclasses.replace(
        declaration.COMMENT, fields=(*declaration.COMMENT.fields, Field("score", Spelling.FLOAT, "A score."))
    )
    monkeypatch.setitem(declaration.VIEWS, "comment", comment)
    monkeypatch.setitem(declaration.BY_TYPE, "Comment", comment)
    monkeypatch.setattr(plan, "_relation", lambda *_: None)  # nothing of the real schema's
    changed = strawberry.Schema(query=ChangedQuery)._schema
    for view in list(declaration.VIEWS.values()):
        if view.type_name not in changed.type_map:
            monkeypatch.delitem(declaration.VIEWS, view.name)
    found = unprojected(changed)
    assert found == {"Comment.score": "scalar", "Comment.shout": "computed"}
    assert not set(found) <= set(listed())  # so the first test fails
