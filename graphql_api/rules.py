"""Saved rules and the rule language: the ``Rule`` type, ``rules``, ``rule`` and ``validateQuery``
queries, ``createRule``, ``updateRule``, ``removeRule``. The language and its matching live in
``domain.rules``; saving in ``domain.saved_rules``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain import saved_rules as rule_cases
from domain.errors import DomainError, NotFound
from domain.queries import CommentFilter, Page
from domain.rule_index import start_rule_indexing
from domain.rules import QuerySyntaxError, parse
from domain.saved_rules import RuleStore, SavedRule
from graphql_api.auth import IsOperator
from graphql_api.context import Info
from graphql_api.errors import UserError, user_errors_in
from graphql_api.ids import NodeType, find_id, global_id, parse_id
from graphql_api.relay import After, Before, Connection, First, Last, Node, connection, window

RuleId = Annotated[strawberry.ID, strawberry.argument(description="Id of the rule (its global id, or its row id).")]


def _store(info: Info) -> RuleStore:
    store = info.context.adapters.rules
    if store is None:
        raise NotFound("Saved rules are not kept here")
    return store


def rule_reference(name: str) -> str:
    """How a query names a saved rule: ``rule:"<name>"``."""
    return f'rule:"{name}"'


@strawberry.type(description="A saved rule-language query, usable by name in any query as `rule:\"name\"`.")
class Rule(Node):
    NODE_TYPE = NodeType.RULE
    name: str = strawberry.field(description="Unique name (case-insensitive, ё = е; 1–100 characters, no `\"`).")
    query: str = strawberry.field(description="The rule-language query.")
    category: str | None = strawberry.field(description="A free-form group the rule belongs to.")
    created_at: datetime = strawberry.field(description="When the rule was saved first.")
    updated_at: datetime = strawberry.field(description="When the rule last changed.")

    indexed_at: datetime | None = strawberry.field(
        description="When the comments the rule matches were last stored complete. Null while they are being "
        "stored (after the rule, a rule it names or a keyword it names changed: an INDEX_RULES task builds them) "
        "or when its query no longer resolves; counts and pages of the rule then run its query instead, with "
        "the same result, only slower."
    )

    @strawberry.field(
        description="How many stored comments match the rule now: counted from its stored matches (see "
        "`indexedAt`), or by running the query while they are being stored."
    )
    async def matches_count(self, info: Info) -> int:
        return await info.context.read_model.comments_count(CommentFilter(query=rule_reference(self.name)))

    @strawberry.field(description="How to name this rule in a query: `rule:\"name\"`.")
    def reference(self) -> str:
        return rule_reference(self.name)

    @classmethod
    def from_domain(cls, rule: SavedRule) -> Rule:
        return cls(
            **cls.ids(rule.id), name=rule.name, query=rule.query, category=rule.category,
            created_at=rule.created_at, updated_at=rule.updated_at, indexed_at=rule.indexed_at,
        )


RuleConnection = Connection[Rule]


@strawberry.type(description="Where a rule-language query is wrong.")
class QueryError:
    message: str = strawberry.field(description="What is wrong, with where.")
    line: int = strawberry.field(description="Line of the query (from 1).")
    column: int = strawberry.field(description="Column of the line (from 1).")
    expected: list[str] = strawberry.field(description="What would have been understood there (may be empty).")


@strawberry.type(description="Whether a rule-language query can be used.")
class QueryValidation:
    valid: bool = strawberry.field(description="True when it parses and everything it names exists.")
    errors: list[QueryError] = strawberry.field(description="Why not; empty when valid.")


@strawberry.input(description="A rule to save.")
class RuleInput:
    name: str = strawberry.field(description="Unique name (1–100 characters, no `\"`).")
    query: str = strawberry.field(description="The rule-language query.")
    category: str | None = strawberry.field(default=None, description="A free-form group for the rule.")


@strawberry.input(description="Changes to a rule; omitted fields stay as they are.")
class UpdateRuleInput:
    name: str | None = strawberry.field(default=None, description="A new name (not while other rules use it).")
    query: str | None = strawberry.field(default=None, description="A new query.")
    category: str | None = strawberry.field(default=strawberry.UNSET, description="A new category; null clears it.")


@strawberry.type(description="Result of createRule or updateRule.")
class RulePayload:
    rule: Rule | None = strawberry.field(description="The rule as saved; null on failure.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeRule.")
class RemoveRulePayload:
    removed_rule_id: strawberry.ID | None = strawberry.field(description="Id of the removed rule; null on failure.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


@strawberry.field(description="Saved rules, by name.")
async def rules(
    info: Info,
    category: Annotated[str | None, strawberry.argument(description="Only rules of this category (exact).")] = None,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> RuleConnection:
    paging = window(first, after, last, before)
    found = await _store(info).list_rules(category=category)
    items = [(str(global_id(NodeType.RULE, r.id)), r) for r in found]
    start, end = 0, len(items)
    cursors = [c for c, _ in items]
    if paging["after"] in cursors:
        start = cursors.index(paging["after"]) + 1
    if paging["before"] in cursors:
        end = cursors.index(paging["before"])
    selected = items[start:end]
    if paging["first"] is not None:
        page = Page(edges=selected[: paging["first"]], has_next_page=len(selected) > paging["first"],
                    has_previous_page=start > 0)
    else:
        page = Page(edges=selected[-paging["last"]:], has_previous_page=len(selected) > paging["last"],
                    has_next_page=end < len(items), backward=True)

    async def count() -> int:
        return len(found)

    return connection(page, Rule.from_domain, count)


async def load_rule(info: Info, pk: int) -> Rule | None:
    found = await _store(info).rules_by_ids([pk])
    return Rule.from_domain(found[0]) if found else None


@strawberry.field(description="One saved rule by its id; null when there is none.")
async def rule(info: Info, id: RuleId) -> Rule | None:
    pk = find_id(id, NodeType.RULE)
    return await load_rule(info, pk) if pk is not None else None


@strawberry.field(
    description="Check a rule-language query without running it: syntax, and that the keywords (`kw:`) and "
    "saved rules (`rule:`) it names exist. Errors say the line, the column and what was expected there."
)
async def validate_query(
    info: Info, query: Annotated[str, strawberry.argument(description="The query to check.")]
) -> QueryValidation:
    try:
        parse(query)
        await info.context.read_model.compiled(CommentFilter(query=query))
    except QuerySyntaxError as e:
        return QueryValidation(
            valid=False, errors=[QueryError(message=e.message, line=e.line, column=e.column, expected=list(e.expected))]
        )
    except DomainError as e:  # a character no database stores
        return QueryValidation(valid=False, errors=[QueryError(message=e.message, line=1, column=1, expected=[])])
    return QueryValidation(valid=True, errors=[])


# --- mutations ------------------------------------------------------------------------------


@strawberry.mutation(
    description="Save a rule. Its query must parse and name only existing keywords and rules.",
    permission_classes=[IsOperator],
)
@user_errors_in(RulePayload, rule=None)
async def create_rule(
    info: Info, input: Annotated[RuleInput, strawberry.argument(description="The rule.")]
) -> RulePayload:
    saved = await rule_cases.create_rule(
        _store(info), name=input.name, query=input.query, category=input.category,
        now=info.context.adapters.clock.now(),
    )
    info.context.read_model.queries_changed()
    await start_rule_indexing(info.context.adapters)
    return RulePayload(rule=Rule.from_domain(saved), errors=[])


@strawberry.mutation(
    description="Change a rule. Rules that name it follow its new query; it cannot be renamed while they do.",
    permission_classes=[IsOperator],
)
@user_errors_in(RulePayload, rule=None)
async def update_rule(
    info: Info, id: RuleId, input: Annotated[UpdateRuleInput, strawberry.argument(description="The changes.")]
) -> RulePayload:
    rule_id = parse_id(id, NodeType.RULE)
    category = None if input.category is strawberry.UNSET else input.category
    saved = await rule_cases.update_rule(
        _store(info), rule_id, name=input.name, query=input.query, category=category,
        clear_category=input.category is None, now=info.context.adapters.clock.now(),
    )
    info.context.read_model.queries_changed()
    await start_rule_indexing(info.context.adapters)
    return RulePayload(rule=Rule.from_domain(saved), errors=[])


@strawberry.mutation(
    description="Delete a rule (not while other rules name it).",
    permission_classes=[IsOperator],
)
@user_errors_in(RemoveRulePayload, removed_rule_id=None)
async def remove_rule(info: Info, id: RuleId) -> RemoveRulePayload:
    rule_id = parse_id(id, NodeType.RULE)
    await rule_cases.remove_rule(_store(info), rule_id)
    info.context.read_model.queries_changed()
    return RemoveRulePayload(removed_rule_id=global_id(NodeType.RULE, rule_id), errors=[])
