"""Limits that keep one request from costing the service too much.

Documents: depth (``schema.MAX_DEPTH``, passed in), aliases and tokens are refused before anything runs;
parsed and validated documents are cached (clients repeat the same few documents). Pages are
capped at ``domain.queries.MAX_PAGE``. The per-request timeout and the WebSocket subscription
cap live in ``app.py``, where requests and connections are.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

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
        partial(ParserCache, maxsize=DOCUMENT_CACHE_SIZE),
        partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
    ]
