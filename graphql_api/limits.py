"""Limits that keep one request from costing the service too much.

Documents: depth (``schema.MAX_DEPTH``, passed in), aliases and tokens are refused before anything runs;
parsed and validated documents are cached (clients repeat the same few documents). Pages are
capped at ``domain.queries.MAX_PAGE``. The per-request timeout and the WebSocket subscription
cap live in ``app.py``, where requests and connections are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from domain.bounded import BoundedDict
from graphql_api.strawberry_compat import DocumentCache, validation_errors

MAX_ALIASES = 30
# GraphiQL's introspection query is about 300 tokens; real documents are far below this.
MAX_TOKENS = 3000
DOCUMENT_CACHE_SIZE = 256
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20


class ValidatedDocuments(SchemaExtension):
    """Strawberry's validation cache, keyed by the document's identity rather than its value:
    Strawberry's LRU hashes the whole syntax tree of every request (2% of a page of ten's CPU).
    ``DocumentCache`` hands out one document object per query text; each entry keeps its
    document and schema alive and is checked against them, so a reused id is never mistaken."""

    # Shared by design: one cache for every operation's instance of the extension.
    _found: BoundedDict[tuple, tuple[Any, Any, list[GraphQLError]]] = BoundedDict(DOCUMENT_CACHE_SIZE)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document, schema, rules = context.graphql_document, context.schema, tuple(context.validation_rules)
        assert document is not None  # validation runs on a parsed document
        key = (id(document), id(schema), rules)
        entry = self._found.get(key)
        if entry is None or entry[0] is not document or entry[1] is not schema:
            entry = (document, schema, validation_errors(schema, document, rules))
            self._found[key] = entry
        context.pre_execution_errors = entry[2]
        yield


def limit_extensions(*, max_depth: int) -> list[Callable[[], SchemaExtension]]:
    """Factories: Strawberry makes fresh extensions per operation.

    The depth and alias rules are built once, here: the limiter extensions would make a new
    rule class per operation, and the validation cache is keyed by the rule classes, so it
    would never hit.
    """
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(AddValidationRules, rules),
        partial(DocumentCache, maxsize=DOCUMENT_CACHE_SIZE),
        ValidatedDocuments,
    ]
