"""The schema: every root field, assembled from the areas that define and resolve them.

Each area module holds its types, its queries and its mutations: ``groups``, ``comments``
(posts, authors and review too), ``keywords``, ``tasks`` (starting parses, analyses and
exports), ``exports``, ``stats`` (the VK token pool and budget too), ``api_tokens``; ``nodes``
refetches any of them by global id, ``subscriptions`` streams live updates. Resolvers stay thin:
they call use cases or loaders. A mutation returns a ``DomainError`` as ``UserError``s of its
payload (``errors.user_errors_in``); a query lets it surface as a GraphQL error carrying the
error's code (see ``errors.py``).

The order of the fields below is the order ``schema.graphql`` lists them in.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig

from graphql_api import api_tokens as token_api
from graphql_api import comments as comment_api
from graphql_api import groups as group_api
from graphql_api import keywords as keyword_api
from graphql_api import nodes as node_api
from graphql_api import review as review_api
from graphql_api import rules as rule_api
from graphql_api import stats as stats_api
from graphql_api import subscriptions as live
from graphql_api import tasks as task_api
from graphql_api.context import OperationLoaders
from graphql_api.errors import CodedErrors, Schema
from graphql_api.executor import ApiExecutor
from graphql_api.limits import limit_extensions
from graphql_api.observability import OperationObserver
from graphql_api.scalars import SCALARS

MAX_DEPTH = 12


@strawberry.type(description="Everything that can be read.")
class Query:
    stats = stats_api.stats
    vk_tokens = stats_api.vk_tokens
    vk_budget = stats_api.vk_budget
    api_tokens = token_api.api_tokens
    node = node_api.node
    nodes = node_api.nodes
    groups = group_api.groups
    group = group_api.group
    comments = comment_api.comments
    comment = comment_api.comment
    comment_events = review_api.comment_events
    viewer = review_api.viewer
    assignable_users = review_api.assignable_users
    tasks = task_api.tasks
    task = task_api.task
    keywords = keyword_api.keywords
    keyword = keyword_api.keyword
    rules = rule_api.rules
    rule = rule_api.rule
    validate_query = rule_api.validate_query


@strawberry.type(description="Everything that changes something. Needs an operator or admin token.")
class Mutation:
    create_api_token = token_api.create_api_token
    revoke_api_token = token_api.revoke_api_token
    add_group = group_api.add_group
    add_groups = group_api.add_groups
    update_group = group_api.update_group
    remove_group = group_api.remove_group
    refresh_group = group_api.refresh_group
    start_parse = task_api.start_parse
    cancel_task = task_api.cancel_task
    add_keywords = keyword_api.add_keywords
    update_keyword = keyword_api.update_keyword
    remove_keyword = keyword_api.remove_keyword
    create_rule = rule_api.create_rule
    update_rule = rule_api.update_rule
    remove_rule = rule_api.remove_rule
    start_analyze = task_api.start_analyze
    start_export = task_api.start_export
    set_comment_state = comment_api.set_comment_state


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws).")
class Subscription:
    task_progress = live.task_progress
    task_events = live.task_events
    comment_matched = live.comment_matched


def build_schema(*, introspection: bool = True) -> Schema:
    # Classes and factories (``limits.py``): Strawberry makes fresh extensions per operation.
    extensions: list[Any] = [
        OperationObserver,
        *limit_extensions(max_depth=MAX_DEPTH),
        OperationLoaders,
        CodedErrors,
    ]
    if not introspection:
        from strawberry.extensions import DisableIntrospection

        extensions.append(DisableIntrospection)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=ApiExecutor,
        config=StrawberryConfig(scalar_map=SCALARS),
    )


schema = build_schema()


if __name__ == "__main__":  # python -m graphql_api.schema > schema.graphql
    from strawberry.printer import print_schema

    print(print_schema(schema))
