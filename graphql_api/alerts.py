"""Alerts: ``AlertRule``, ``AlertDelivery``, the ``alertRules``, ``alertRule`` and
``alertDeliveries`` queries and the admin-only mutations ``createAlertRule``,
``updateAlertRule``, ``removeAlertRule`` and ``testAlertRule``. The rules, the outbox and the
delivery loop live in ``domain.alerts``; these resolvers only translate.

Channels are shown masked (``domain.alerts.mask_channel``), and only to operators and admins:
a viewer sees none. The webhook secret is in ``createAlertRule``'s payload, once.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from domain import alert_model as model
from domain import alerts as alert_cases
from domain.auth import Role
from domain.models import UNSET, DeliveryState
from domain.queries import CommentFilter, DeliveryFilter, DeliveryView
from graphql_api.auth import IsAdmin
from graphql_api.comments import AlertRuleFilter, Comment, CommentFilterInput, comment_filter_view, to_comment_filter
from graphql_api.context import Info
from graphql_api.errors import UserError, user_errors_in
from graphql_api.ids import NodeType, filter_ids, global_id, parse_id
from graphql_api.relay import After, Before, Connection, First, Last, Node, by_id, connection, window

AlertRuleId = Annotated[
    strawberry.ID, strawberry.argument(description="Id of the alert rule (its global id, or its row id).")
]


@strawberry.enum(description="When a rule sends.")
class AlertMode(enum.Enum):
    INSTANT = strawberry.enum_value("INSTANT", description="One message per matched comment.")
    DIGEST = strawberry.enum_value(
        "DIGEST",
        description="At most one message every `digestMinutes`: how many matched, the first few, a link to Review.",
    )
    THRESHOLD = strawberry.enum_value(
        "THRESHOLD",
        description="One message when at least `thresholdCount` comments matched within "
        "`thresholdMinutes` (one per window).",
    )


@strawberry.enum(description="Where a delivery stands.")
class AlertDeliveryState(enum.Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Not sent yet (waiting for its turn, its window, or a retry)."
    )
    SENT = strawberry.enum_value("SENT", description="The channel accepted it.")
    FAILED = strawberry.enum_value("FAILED", description="Retries for 24 hours failed; `lastError` says why.")
    SKIPPED = strawberry.enum_value(
        "SKIPPED",
        description="A THRESHOLD rule's match whose window stayed below the threshold (or whose comment "
        "was removed): nothing to send.",
    )


@strawberry.enum(description="The language of a rule's messages.")
class AlertLanguage(enum.Enum):
    RU = strawberry.enum_value("ru", description="Russian.")
    EN = strawberry.enum_value("en", description="English.")


@strawberry.enum(description="Operational events a system rule alerts.")
class SystemEvent(enum.Enum):
    TASK_FAILED = strawberry.enum_value("TASK_FAILED", description="A task ended FAILED.")
    TOKENS_DOWN = strawberry.enum_value("TOKENS_DOWN", description="Every VK token is parked or revoked.")
    COMMUNITY_LATE = strawberry.enum_value(
        "COMMUNITY_LATE", description="A monitored community's last successful run is older than twice its interval."
    )
    TASK_STALLED = strawberry.enum_value("TASK_STALLED", description="A running task's progress stopped moving.")
    CHANNEL_FAILING = strawberry.enum_value(
        "CHANNEL_FAILING", description="An alert channel's deliveries have been failing for an hour."
    )


def _sees_channels(info: Info) -> bool:
    role = getattr(info.context, "role", None)
    return role is not None and role.allows(Role.OPERATOR)


@strawberry.type(description="An alert rule: which matched comments (or operational events) go to which channels, how.")
class AlertRule(Node):
    NODE_TYPE = NodeType.ALERT_RULE
    name: str = strawberry.field(description="The rule's name (in its messages).")
    enabled: bool = strawberry.field(description="A disabled rule queues nothing.")
    muted_until: datetime | None = strawberry.field(
        description="Until then the rule queues nothing (a pause); null: not muted."
    )
    mode: AlertMode = strawberry.field(description="When it sends.")
    filter: AlertRuleFilter = strawberry.field(  # type: ignore[valid-type]
        description="Which matched comments it alerts (ignored by a system rule)."
    )
    digest_minutes: int | None = strawberry.field(description="DIGEST: minutes between messages.")
    threshold_count: int | None = strawberry.field(description="THRESHOLD: matches needed within the window.")
    threshold_minutes: int | None = strawberry.field(description="THRESHOLD: the window's length in minutes.")
    language: AlertLanguage = strawberry.field(description="The language of its messages.")
    system_events: list[SystemEvent] = strawberry.field(
        description="Operational events it alerts; non-empty: a system rule (its filter is not used)."
    )
    created_at: datetime | None = strawberry.field(description="When the rule was created.")
    updated_at: datetime | None = strawberry.field(description="When the rule last changed.")
    masked_channels: strawberry.Private[list[str]]

    @strawberry.field(
        description="Where it sends: URLs with their secrets masked (send one back unchanged to keep that channel). "
        "`http(s)://` is a webhook signed per Standard Webhooks, anything else an Apprise URL. Empty for viewers."
    )
    def channels(self, info: Info) -> list[str]:
        return list(self.masked_channels) if _sees_channels(info) else []

    @classmethod
    def from_domain(cls, rule: model.AlertRule) -> AlertRule:
        return cls(
            **cls.ids(rule.id),
            name=rule.name,
            enabled=rule.enabled,
            muted_until=rule.muted_until,
            mode=AlertMode[rule.mode.name],
            filter=comment_filter_view(rule.filter),
            digest_minutes=rule.digest_minutes,
            threshold_count=rule.threshold_count,
            threshold_minutes=rule.threshold_minutes,
            language=AlertLanguage[rule.language.name],
            system_events=[SystemEvent[e.name] for e in rule.system_events],
            created_at=rule.created_at,
            updated_at=rule.updated_at,
            masked_channels=[c.masked for c in rule.channels],
        )


@strawberry.type(description="One alert of one rule to one channel: a matched comment, or an operational event.")
class AlertDelivery:
    id: strawberry.ID = strawberry.field(description="Opaque id of the delivery.")
    pk: strawberry.Private[int]
    rule_pk: strawberry.Private[int]
    comment_pk: strawberry.Private[int | None]
    channel: str = strawberry.field(description="The channel's URL, masked (empty for viewers).")
    state: AlertDeliveryState = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(description="How many times sending was tried.")
    last_error: str | None = strawberry.field(description="What the channel answered the last failed try (masked).")
    created_at: datetime = strawberry.field(description="When it was queued (when the match was stored).")
    sent_at: datetime | None = strawberry.field(description="When the channel accepted it.")
    next_attempt_at: datetime | None = strawberry.field(description="PENDING: not tried again before this.")
    message_id: str | None = strawberry.field(
        description="The message it goes out in: the `webhook-id` header, the same on every retry (dedupe on it)."
    )
    event: JSON | None = strawberry.field(
        description="An operational event's details (system rules); null for a comment."
    )

    @strawberry.field(description="The rule it belongs to.")
    async def rule(self, info: Info) -> AlertRule | None:
        found = (await _rules_of_request(info)).get(self.rule_pk)
        return AlertRule.from_domain(found) if found is not None else None

    @strawberry.field(description="The matched comment; null for an operational event.")
    async def comment(self, info: Info) -> Comment | None:
        if self.comment_pk is None:
            return None
        found = await info.context.loaders(info).comment.load(self.comment_pk)
        return Comment.from_view(found) if found is not None else None

    @classmethod
    def from_view(cls, view: DeliveryView, *, show_channel: bool = True) -> AlertDelivery:
        return cls(
            id=global_id(NodeType.ALERT_DELIVERY, view.id),
            pk=view.id,
            rule_pk=view.rule_id,
            comment_pk=view.comment_id,
            channel=view.channel if show_channel else "",
            state=AlertDeliveryState[view.state.name],
            attempts=view.attempts,
            last_error=view.last_error,
            created_at=view.created_at,
            sent_at=view.sent_at,
            next_attempt_at=view.next_attempt_at,
            message_id=view.message_id,
            event=JSON(view.event) if view.event is not None else None,
        )


AlertDeliveryConnection = Connection[AlertDelivery]

_RULES_KEY = "alert_rules"


async def _rules_of_request(info: Info) -> dict[int, model.AlertRule]:
    """Every rule, read once per operation (a page of deliveries names a few rules many times;
    its resolvers run at once, so they share one read in flight)."""
    loaders = info.context.loaders(info)
    pending = loaders.__dict__.get(_RULES_KEY)
    if pending is None:

        async def read() -> dict[int, model.AlertRule]:
            rules = await alert_cases.list_alert_rules(info.context.adapters)
            return {r.id: r for r in rules if r.id is not None}

        pending = loaders.__dict__[_RULES_KEY] = asyncio.ensure_future(read())
    found: dict[int, model.AlertRule] = await pending
    return found


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(description="An alert rule's settings. For updateAlertRule, omitted fields stay as they are.")
class AlertRuleInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="The rule's name (1–200 characters).")
    enabled: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether it queues alerts.")
    muted_until: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Queue nothing until then; null unmutes."
    )
    filter: CommentFilterInput | None = strawberry.field(
        default=strawberry.UNSET, description="Which matched comments it alerts (as the `comments` query's filter)."
    )
    mode: AlertMode | None = strawberry.field(
        default=strawberry.UNSET, description="When it sends (INSTANT by default)."
    )
    channels: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"Where it sends (1–{model.MAX_CHANNELS} URLs): `https://...` webhooks, or Apprise URLs "
        "(`tgram://`, `mailtos://`, `slack://`, `json://`, ...). A masked URL as shown keeps that channel.",
    )
    digest_minutes: int | None = strawberry.field(
        default=strawberry.UNSET, description="DIGEST: minutes between messages (1–10080)."
    )
    threshold_count: int | None = strawberry.field(
        default=strawberry.UNSET, description="THRESHOLD: matches needed within the window."
    )
    threshold_minutes: int | None = strawberry.field(
        default=strawberry.UNSET, description="THRESHOLD: the window in minutes (1–10080)."
    )
    language: AlertLanguage | None = strawberry.field(
        default=strawberry.UNSET, description="The language of its messages (en by default)."
    )
    system_events: list[SystemEvent] | None = strawberry.field(
        default=strawberry.UNSET, description="Operational events to alert instead of comments (a system rule)."
    )


@strawberry.input(name="AlertDeliveryFilter", description="Which deliveries to list. Every given condition must hold.")
class AlertDeliveryFilterInput:
    rule_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only of these rules.")
    states: list[AlertDeliveryState] | None = strawberry.field(default=None, description="Only in these states.")
    comment_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only of these comments.")


@strawberry.type(description="Result of createAlertRule.")
class CreateAlertRulePayload:
    alert_rule: AlertRule | None = strawberry.field(description="The new rule; null on failure.")
    webhook_secret: str | None = strawberry.field(
        description="The secret its webhooks are signed with (Standard Webhooks, `whsec_...`): shown only here, once."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of updateAlertRule.")
class AlertRulePayload:
    alert_rule: AlertRule | None = strawberry.field(description="The rule as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeAlertRule.")
class RemoveAlertRulePayload:
    removed_alert_rule_id: strawberry.ID | None = strawberry.field(description="Id of the removed rule.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="What one channel answered a test message.")
class AlertChannelTest:
    channel: str = strawberry.field(description="The channel, masked.")
    ok: bool = strawberry.field(description="Whether the channel accepted the message.")
    detail: str = strawberry.field(description="What it answered (an HTTP status, Apprise's verdict), masked.")


@strawberry.type(description="Result of testAlertRule.")
class TestAlertRulePayload:
    results: list[AlertChannelTest] = strawberry.field(description="One per channel, in the rule's order.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


@strawberry.field(description="Every alert rule, in the order they were created.")
async def alert_rules(info: Info) -> list[AlertRule]:
    return [AlertRule.from_domain(r) for r in await alert_cases.list_alert_rules(info.context.adapters)]


async def load_alert_rule(info: Info, rule_id: int) -> AlertRule | None:
    found = await alert_cases.get_alert_rule(info.context.adapters, rule_id)
    return AlertRule.from_domain(found) if found is not None else None


@strawberry.field(description="One alert rule by its id; null when there is none.")
async def alert_rule(info: Info, id: AlertRuleId) -> AlertRule | None:
    return await by_id(
        id,
        NodeType.ALERT_RULE,
        lambda pk: alert_cases.get_alert_rule(info.context.adapters, pk),
        AlertRule.from_domain,
    )


def _delivery_filter(flt: AlertDeliveryFilterInput | None) -> DeliveryFilter:
    if flt is None:
        return DeliveryFilter()
    return DeliveryFilter(
        rule_ids=filter_ids(flt.rule_ids, NodeType.ALERT_RULE, field="ruleIds"),
        comment_ids=filter_ids(flt.comment_ids, NodeType.COMMENT, field="commentIds"),
        states=tuple(DeliveryState(s.name) for s in flt.states) if flt.states is not None else None,
    )


@strawberry.field(description="Alert deliveries, newest first: what was sent, what waits, what failed and why.")
async def alert_deliveries(
    info: Info,
    filter: Annotated[AlertDeliveryFilterInput | None, strawberry.argument(description="Which deliveries.")] = None,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> AlertDeliveryConnection:
    flt = _delivery_filter(filter)
    read_model = info.context.read_model
    page = await read_model.alert_deliveries_page(flt, **window(first, after, last, before))
    show = _sees_channels(info)
    return connection(
        page, lambda v: AlertDelivery.from_view(v, show_channel=show), lambda: read_model.alert_deliveries_count(flt)
    )


# --- mutations ------------------------------------------------------------------------------


def _rule_input(input: AlertRuleInput) -> model.RuleInput:
    """The domain's change set: an omitted field is UNSET; null clears the nullable ones
    (``mutedUntil``, the mode's numbers), resets ``filter`` and ``systemEvents``, and leaves the
    others (which cannot be null) as they are."""

    def given(value: Any, convert: Any = None, *, null: Any = UNSET) -> Any:
        if value is strawberry.UNSET:
            return UNSET
        if value is None:
            return null
        return convert(value) if convert is not None else value

    return model.RuleInput(
        name=given(input.name),
        enabled=given(input.enabled),
        muted_until=given(input.muted_until, null=None),
        filter=given(input.filter, to_comment_filter, null=CommentFilter()),
        mode=given(input.mode, lambda m: model.AlertMode(m.name)),
        channels=given(input.channels),
        digest_minutes=given(input.digest_minutes, null=None),
        threshold_count=given(input.threshold_count, null=None),
        threshold_minutes=given(input.threshold_minutes, null=None),
        language=given(input.language, lambda lang: model.AlertLanguage(lang.value)),
        system_events=given(input.system_events, lambda es: [model.SystemEvent(e.name) for e in es], null=[]),
    )


async def _checked(info: Info, rule_input: model.RuleInput) -> model.RuleInput:
    """The rule's query names keywords and saved rules that exist (``BAD_USER_INPUT`` with where
    otherwise), as a Review filter's would."""
    if isinstance(rule_input.filter, CommentFilter):
        await info.context.read_model.compiled(rule_input.filter)
    return rule_input


@strawberry.mutation(
    description="Create an alert rule. Its webhook secret is in the payload, once. Admins only.",
    permission_classes=[IsAdmin],
)
@user_errors_in(CreateAlertRulePayload, alert_rule=None, webhook_secret=None)
async def create_alert_rule(
    info: Info, input: Annotated[AlertRuleInput, strawberry.argument(description="The rule.")]
) -> CreateAlertRulePayload:
    rule_input = await _checked(info, _rule_input(input))
    rule = await alert_cases.create_alert_rule(info.context.adapters, rule_input)
    has_webhook = any(c.kind is model.ChannelKind.WEBHOOK for c in rule.channels)
    return CreateAlertRulePayload(
        alert_rule=AlertRule.from_domain(rule), webhook_secret=rule.webhook_secret if has_webhook else None, errors=[]
    )


@strawberry.mutation(
    description="Change an alert rule; omitted fields stay. Admins only.", permission_classes=[IsAdmin]
)
@user_errors_in(AlertRulePayload, alert_rule=None)
async def update_alert_rule(
    info: Info, id: AlertRuleId, input: Annotated[AlertRuleInput, strawberry.argument(description="The changes.")]
) -> AlertRulePayload:
    rule_id = parse_id(id, NodeType.ALERT_RULE)
    rule_input = await _checked(info, _rule_input(input))
    rule = await alert_cases.update_alert_rule(info.context.adapters, rule_id, rule_input)
    return AlertRulePayload(alert_rule=AlertRule.from_domain(rule), errors=[])


@strawberry.mutation(
    description="Delete an alert rule with its channels and deliveries (pending ones are not sent). Admins only.",
    permission_classes=[IsAdmin],
)
@user_errors_in(RemoveAlertRulePayload, removed_alert_rule_id=None)
async def remove_alert_rule(info: Info, id: AlertRuleId) -> RemoveAlertRulePayload:
    rule_id = parse_id(id, NodeType.ALERT_RULE)
    await alert_cases.remove_alert_rule(info.context.adapters, rule_id)
    return RemoveAlertRulePayload(removed_alert_rule_id=global_id(NodeType.ALERT_RULE, rule_id), errors=[])


@strawberry.mutation(
    description="Send a sample message to each of the rule's channels now and report what each answered. Admins only.",
    permission_classes=[IsAdmin],
)
@user_errors_in(TestAlertRulePayload, results=[])
async def test_alert_rule(info: Info, id: AlertRuleId) -> TestAlertRulePayload:
    rule_id = parse_id(id, NodeType.ALERT_RULE)
    results = await alert_cases.test_alert_rule(info.context.adapters, rule_id)
    return TestAlertRulePayload(
        results=[AlertChannelTest(channel=r.channel, ok=r.ok, detail=r.detail) for r in results], errors=[]
    )
