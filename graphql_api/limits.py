"""Limits that keep one request from costing the service too much.

Documents: depth (``schema.MAX_DEPTH``, passed in), aliases and tokens are refused before anything runs;
parsed and validated documents are cached (clients repeat the same few documents). Pages are
capped at ``domain.queries.MAX_PAGE``. The per-request timeout and the WebSocket subscription
cap live in ``app.py``, where requests and connections are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

MAX_ALIASES = 30
# GraphiQL's introspection query is about 300 tokens; real documents are far below this.
MAX_TOKENS = 3000
DOCUMENT_CACHE_SIZE = 256
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20
REQUEST_TIMEOUT_SECONDS = 30.0


class DocumentCache(ParserCache):
    """Strawberry's parser cache, minus one flaw: it parses in ``on_parse`` itself, so a syntax
    error escaped the parsing step. Over HTTP that still became a response (without a code); a
    WebSocket subscription just completed, silently. Here a document that does not parse is left
    to Strawberry's own parse, which reports the error as the operation's result."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            pass  # parsed again, uncached, by Strawberry; failing documents are not worth caching
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
        partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
    ]
