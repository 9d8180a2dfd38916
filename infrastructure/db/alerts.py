"""Alert rules, channels and the delivery outbox in SQL (``domain.ports.AlertRepository``).

The outbox rows of a batch of matched comments are written by one ``INSERT ... SELECT`` per
rule and channel, in the transaction that stored the matches, with ``ON CONFLICT DO NOTHING``
on (rule, channel, event): a comment already alerted by that rule is never queued again.
Claims lease rows (``lease_owner``/``lease_until``) in a short transaction of their own; on
PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so concurrent workers split the work
instead of queueing behind each other (SQLite has one writer at a time anyway).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Select, String, and_, cast, delete, false, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from domain.alert_model import (
    AlertChannel,
    AlertComment,
    AlertLanguage,
    AlertMode,
    AlertRule,
    ChannelKind,
    PendingDelivery,
    SystemEvent,
    filter_from_json,
    filter_to_json,
    mask_channel,
)
from domain.errors import InvalidInput
from domain.models import DeliveryState
from domain.queries import DeliveryFilter, DeliveryView
from domain.rules import QueryCompiler, QueryMatcher
from infrastructure.db.bulk import in_values
from infrastructure.db.filters import comment_conditions
from infrastructure.db.rules import session_compiler
from infrastructure.db.tables import (
    alert_channels,
    alert_deliveries,
    alert_rules,
    authors,
    comments,
    groups,
    keywords,
    matches,
)
from infrastructure.sealed import Sealer, Unreadable

VK = "https://vk.com"

log = structlog.get_logger("vkcp.alerts")


def _rule_values(rule: AlertRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "muted_until": rule.muted_until,
        "mode": rule.mode.value,
        "filter": filter_to_json(rule.filter),
        "digest_minutes": rule.digest_minutes,
        "threshold_count": rule.threshold_count,
        "threshold_minutes": rule.threshold_minutes,
        "language": rule.language.value,
        "system_events": [e.value for e in rule.system_events],
        "updated_at": rule.updated_at,
    }


def _rule_from_row(row: RowMapping, channels: list[AlertChannel], sealer: Sealer | None) -> AlertRule:
    """The rule; with no ``sealer`` its webhook secret stays unopened (empty)."""
    try:
        webhook_secret = sealer.open(row["webhook_secret"]) if sealer is not None else ""
    except Unreadable as e:  # its webhooks cannot be signed: none is sent
        webhook_secret = ""
        for channel in channels:
            if channel.kind is ChannelKind.WEBHOOK and channel.unreadable is None:
                channel.unreadable = f"the rule's webhook signing secret is unreadable: {e}"
    return AlertRule(
        id=row["id"],
        name=row["name"],
        mode=AlertMode(row["mode"]),
        filter=filter_from_json(row["filter"] or {}),
        channels=channels,
        enabled=row["enabled"],
        muted_until=row["muted_until"],
        digest_minutes=row["digest_minutes"],
        threshold_count=row["threshold_count"],
        threshold_minutes=row["threshold_minutes"],
        language=AlertLanguage(row["language"]),
        system_events=tuple(SystemEvent(e) for e in row["system_events"] or ()),
        webhook_secret=webhook_secret,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlAlertRepository:
    """Channel URLs and webhook secrets are written sealed and opened as they are read
    (``infrastructure/sealed.py``): the database never holds them in the clear."""

    def __init__(self, session: AsyncSession, sealer: Sealer | None = None) -> None:
        self.session = session
        self._given_sealer = sealer

    @property
    def _sealer(self) -> Sealer:
        if self._given_sealer is None:  # a unit of work built for something else (a CLI, a bench)
            raise RuntimeError("alert credentials need the server's Sealer: build SqlUnitOfWork(sessions, sealer)")
        return self._given_sealer

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _insert(self):  # the dialect's INSERT, which knows ON CONFLICT
        return (postgresql if self._dialect == "postgresql" else sqlite).insert(alert_deliveries)

    # --- rules ---

    async def _channels(self, rule_ids: Sequence[int], *, credentials: bool = True) -> dict[int, list[AlertChannel]]:
        """The rules' channels; with ``credentials=False`` (the outbox needs only their ids) none
        is opened: each is its masked form, marked unusable."""
        found: dict[int, list[AlertChannel]] = {i: [] for i in rule_ids}
        if not rule_ids:
            return found
        query = (
            select(alert_channels.c.id, alert_channels.c.rule_id, alert_channels.c.url, alert_channels.c.masked)
            .where(in_values(self._dialect, alert_channels.c.rule_id, list(rule_ids)))
            .order_by(alert_channels.c.rule_id, alert_channels.c.position)
        )
        for row in await self.session.execute(query):
            if not credentials:
                found[row.rule_id].append(AlertChannel(id=row.id, url=row.masked, unreadable="credentials not opened"))
                continue
            try:
                channel = AlertChannel(id=row.id, url=self._sealer.open(row.url))
            except Unreadable as e:  # shown as it was saved; every delivery to it fails, saying why
                channel = AlertChannel(id=row.id, url=row.masked, unreadable=str(e))
            found[row.rule_id].append(channel)
        return found

    async def list_rules(self, *, credentials: bool = True) -> builtins.list[AlertRule]:
        rows = (await self.session.execute(select(alert_rules).order_by(alert_rules.c.id))).mappings().all()
        channels = await self._channels([r["id"] for r in rows], credentials=credentials)
        return [_rule_from_row(r, channels[r["id"]], self._sealer if credentials else None) for r in rows]

    async def get_rule(self, rule_id: int) -> AlertRule | None:
        row = (await self.session.execute(select(alert_rules).where(alert_rules.c.id == rule_id))).mappings().first()
        if row is None:
            return None
        return _rule_from_row(row, (await self._channels([rule_id]))[rule_id], self._sealer)

    async def add_rule(self, rule: AlertRule) -> AlertRule:
        values = {**_rule_values(rule), "webhook_secret": self._sealer.seal(rule.webhook_secret),
                  "created_at": rule.created_at}
        rule_id = (
            await self.session.execute(alert_rules.insert().values(values).returning(alert_rules.c.id))
        ).scalar_one()
        await self._write_channels(rule_id, rule.channels)
        stored = await self.get_rule(rule_id)
        assert stored is not None
        return stored

    async def _write_channels(self, rule_id: int, channels: Sequence[AlertChannel]) -> None:
        keep = [c.id for c in channels if c.id is not None]
        stmt = delete(alert_channels).where(alert_channels.c.rule_id == rule_id)
        if keep:
            stmt = stmt.where(~in_values(self._dialect, alert_channels.c.id, keep))
        await self.session.execute(stmt)
        for position, channel in enumerate(channels):
            if channel.id is not None:
                await self.session.execute(
                    update(alert_channels).where(alert_channels.c.id == channel.id).values(position=position)
                )
            else:
                await self.session.execute(
                    alert_channels.insert().values(
                        rule_id=rule_id, position=position, url=self._sealer.seal(channel.url),
                        masked=mask_channel(channel.url),
                    )
                )

    async def save_rule(self, rule: AlertRule) -> AlertRule:
        assert rule.id is not None
        await self.session.execute(update(alert_rules).where(alert_rules.c.id == rule.id).values(_rule_values(rule)))
        await self._write_channels(rule.id, rule.channels)
        stored = await self.get_rule(rule.id)
        assert stored is not None
        return stored

    async def remove_rule(self, rule_id: int) -> bool:
        # Children first: SQLite enforces ON DELETE CASCADE only with its foreign keys pragma on.
        await self.session.execute(delete(alert_deliveries).where(alert_deliveries.c.rule_id == rule_id))
        await self.session.execute(delete(alert_channels).where(alert_channels.c.rule_id == rule_id))
        result = await self.session.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))
        return bool(getattr(result, "rowcount", 0))

    # --- the outbox ---

    async def enqueue_matches(self, comment_ids: Sequence[int], *, now: datetime) -> int:
        ids = sorted(set(comment_ids))
        if not ids:
            return 0
        rules = [r for r in await self.list_rules(credentials=False) if not r.is_system and r.active(now)]
        added = 0
        compiler: QueryCompiler | None = None
        for rule in rules:
            query: QueryMatcher | None = None
            if rule.filter.query is not None:  # the rule language: SQL narrows, the domain decides
                compiler = compiler or session_compiler(self.session)
                try:
                    query = await compiler.compile(rule.filter.query)
                except InvalidInput as e:  # a keyword or saved rule it names was removed since
                    log.warning("alerts.rule_query_unresolved", rule_id=rule.id, error=str(e))
                    continue
            conditions = [
                in_values(self._dialect, comments.c.id, ids),
                comments.c.matches_count > 0,
                *comment_conditions(rule.filter, self._dialect, query),
            ]
            if query is not None:
                found = await self.session.execute(select(comments.c.id, comments.c.text).where(and_(*conditions)))
                admitted = [row.id for row in found if query.matches(row.text)]
                if not admitted:
                    continue
                conditions = [in_values(self._dialect, comments.c.id, admitted)]
            # DIGEST rows wait for their window; the others are due at once.
            for channel in rule.channels:
                source = (
                    select(
                        literal(rule.id).label("rule_id"),
                        literal(channel.id).label("channel_id"),
                        comments.c.id.label("comment_id"),
                        (literal("c") + cast(comments.c.id, String)).label("event_key"),
                        literal(DeliveryState.PENDING.value).label("state"),
                        literal(now, alert_deliveries.c.created_at.type).label("created_at"),
                        literal(now, alert_deliveries.c.next_attempt_at.type).label("next_attempt_at"),
                    )
                    .where(and_(*conditions))
                    .order_by(comments.c.id)
                )
                names = ["rule_id", "channel_id", "comment_id", "event_key", "state", "created_at", "next_attempt_at"]
                stmt = (
                    self._insert()
                    .from_select(names, source)
                    .on_conflict_do_nothing(index_elements=["rule_id", "channel_id", "event_key"])
                )
                result = await self.session.execute(stmt)
                added += max(0, getattr(result, "rowcount", 0) or 0)
        return added

    async def enqueue_event(self, rule: AlertRule, key: str, event: dict[str, Any], *, now: datetime) -> int:
        added = 0
        for channel in rule.channels:
            stmt = (
                self._insert()
                .values(
                    rule_id=rule.id,
                    channel_id=channel.id,
                    comment_id=None,
                    event_key=key[:200],
                    event=event,
                    state=DeliveryState.PENDING.value,
                    created_at=now,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing(index_elements=["rule_id", "channel_id", "event_key"])
            )
            result = await self.session.execute(stmt)
            added += max(0, getattr(result, "rowcount", 0) or 0)
        return added

    # --- delivery ---

    @staticmethod
    def _free(now: datetime):
        d = alert_deliveries.c
        return or_(d.lease_until.is_(None), d.lease_until < now)

    async def due_groups(self, *, now: datetime, limit: int) -> builtins.list[tuple[int, int]]:
        d = alert_deliveries.c
        query = (
            select(d.rule_id, d.channel_id)
            .where(d.state == DeliveryState.PENDING.value, d.next_attempt_at <= now, self._free(now))
            .group_by(d.rule_id, d.channel_id)
            .order_by(func.min(d.id))
            .limit(limit)
        )
        return [(r.rule_id, r.channel_id) for r in await self.session.execute(query)]

    async def claim(
        self,
        rule_id: int,
        channel_id: int,
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        due_only: bool,
    ) -> builtins.list[PendingDelivery]:
        d = alert_deliveries.c
        pick = (
            select(d.id, d.next_attempt_at)
            .where(
                d.rule_id == rule_id,
                d.channel_id == channel_id,
                d.state == DeliveryState.PENDING.value,
                self._free(now),
            )
            .order_by(d.id)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = []
        for row in await self.session.execute(pick):
            if due_only and row.next_attempt_at > now:
                break  # the rule's order: nothing goes before an earlier row that waits
            ids.append(row.id)
        if not ids:
            return []
        await self.session.execute(
            update(alert_deliveries)
            .where(in_values(self._dialect, d.id, ids))
            .values(lease_owner=owner, lease_until=lease_until)
        )
        rows = await self.session.execute(
            select(
                d.id,
                d.rule_id,
                d.channel_id,
                d.comment_id,
                d.event_key,
                d.event,
                d.attempts,
                d.created_at,
                d.message_id,
            )
            .where(in_values(self._dialect, d.id, ids))
            .order_by(d.id)
        )
        return [
            PendingDelivery(
                id=r.id,
                rule_id=r.rule_id,
                channel_id=r.channel_id,
                comment_id=r.comment_id,
                event_key=r.event_key,
                event=r.event,
                attempts=r.attempts,
                created_at=r.created_at,
                message_id=r.message_id,
            )
            for r in rows
        ]

    async def last_sent_at(self, rule_id: int, channel_id: int) -> datetime | None:
        d = alert_deliveries.c
        query = select(func.max(d.sent_at)).where(
            d.rule_id == rule_id, d.channel_id == channel_id, d.state == DeliveryState.SENT.value
        )
        found = (await self.session.execute(query)).scalar_one()
        if found is not None and found.tzinfo is None:  # SQLite: the stored naive UTC text
            found = found.replace(tzinfo=UTC)
        return found

    async def assign(self, ids: Sequence[int], message_id: str) -> None:
        if ids:
            await self.session.execute(
                update(alert_deliveries)
                .where(in_values(self._dialect, alert_deliveries.c.id, list(ids)))
                .values(message_id=message_id)
            )

    async def release(self, ids: Sequence[int], *, next_attempt_at: datetime) -> None:
        if ids:
            await self.session.execute(
                update(alert_deliveries)
                .where(in_values(self._dialect, alert_deliveries.c.id, list(ids)))
                .values(lease_owner=None, lease_until=None, next_attempt_at=next_attempt_at)
            )

    async def settle(self, ids: Sequence[int], state: DeliveryState, *, now: datetime, attempted: bool = False) -> None:
        if not ids:
            return
        d = alert_deliveries.c
        values: dict[str, Any] = {"state": state.value, "lease_owner": None, "lease_until": None}
        if state is DeliveryState.SENT:
            values["sent_at"] = now
        if attempted:
            values["attempts"] = d.attempts + 1
        await self.session.execute(
            update(alert_deliveries).where(in_values(self._dialect, d.id, list(ids))).values(values)
        )

    async def record_failure(
        self, delivery_id: int, *, error: str, next_attempt_at: datetime | None, now: datetime
    ) -> None:
        d = alert_deliveries.c
        values: dict[str, Any] = {
            "attempts": d.attempts + 1,
            "last_error": error[:1000],
            "lease_owner": None,
            "lease_until": None,
        }
        if next_attempt_at is None:
            values["state"] = DeliveryState.FAILED.value
        else:
            values["next_attempt_at"] = next_attempt_at
        await self.session.execute(update(alert_deliveries).where(d.id == delivery_id).values(values))

    async def comments_for(self, comment_ids: Sequence[int]) -> dict[int, AlertComment]:
        ids = sorted(set(comment_ids))
        if not ids:
            return {}
        c = comments.c
        rows = (
            await self.session.execute(
                select(
                    c.id,
                    c.text,
                    c.from_id,
                    c.group_id,
                    c.owner_id,
                    c.post_vk_id,
                    c.vk_id,
                    c.published_at,
                    authors.c.name.label("author_name"),
                    groups.c.name.label("group_name"),
                )
                .select_from(
                    comments.join(groups, groups.c.id == c.group_id).outerjoin(authors, authors.c.vk_id == c.from_id)
                )
                .where(in_values(self._dialect, c.id, ids))
            )
        ).all()
        found: dict[int, list[tuple[str, str]]] = {}
        for m in await self.session.execute(
            select(matches.c.comment_id, keywords.c.word, matches.c.snippet)
            .select_from(matches.join(keywords, keywords.c.id == matches.c.keyword_id))
            .where(in_values(self._dialect, matches.c.comment_id, ids))
            .order_by(matches.c.comment_id, matches.c.start_pos)
        ):
            found.setdefault(m.comment_id, []).append((m.word, m.snippet))
        return {
            r.id: AlertComment(
                comment_id=r.id,
                text=r.text,
                author_id=r.from_id,
                author_name=r.author_name,
                group_id=r.group_id,
                group_name=r.group_name,
                published_at=r.published_at,
                url=f"{VK}/wall{r.owner_id}_{r.post_vk_id}?reply={r.vk_id}",
                matches=tuple(found.get(r.id, ())),
            )
            for r in rows
        }

    async def failing_channels(self, *, since: datetime) -> builtins.list[tuple[int, str]]:
        d = alert_deliveries.c
        query = (
            select(alert_channels.c.id, alert_channels.c.masked)
            .where(
                alert_channels.c.id.in_(
                    select(d.channel_id).where(
                        d.state == DeliveryState.PENDING.value, d.attempts > 0, d.created_at < since
                    )
                )
            )
            .order_by(alert_channels.c.id)
        )
        return [(r.id, r.masked) for r in await self.session.execute(query)]

    async def state_counts(self) -> dict[str, int]:
        d = alert_deliveries.c
        rows = await self.session.execute(select(d.state, func.count()).group_by(d.state))
        counts = {s.value: 0 for s in DeliveryState}
        counts.update({state: n for state, n in rows.all()})
        return counts


# --- the deliveries log (read side) ---------------------------------------------------------


def delivery_query(flt: DeliveryFilter, dialect: str) -> Select:
    d = alert_deliveries.c
    query = select(
        d.id,
        d.rule_id,
        d.comment_id,
        d.state,
        d.attempts,
        d.last_error,
        d.created_at,
        d.sent_at,
        d.next_attempt_at,
        d.message_id,
        d.event,
        alert_channels.c.masked.label("channel"),
    ).select_from(alert_deliveries.join(alert_channels, alert_channels.c.id == d.channel_id))
    if flt.rule_ids is not None:
        query = query.where(in_values(dialect, d.rule_id, list(flt.rule_ids)) if flt.rule_ids else false())
    if flt.comment_ids is not None:
        query = query.where(in_values(dialect, d.comment_id, list(flt.comment_ids)) if flt.comment_ids else false())
    if flt.states is not None:
        query = query.where(d.state.in_([s.value for s in flt.states]) if flt.states else false())
    return query


def delivery_from_row(row: RowMapping) -> DeliveryView:
    state = DeliveryState(row["state"])
    return DeliveryView(
        id=row["id"],
        rule_id=row["rule_id"],
        comment_id=row["comment_id"],
        channel=row["channel"],
        state=state,
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
        next_attempt_at=row["next_attempt_at"] if state is DeliveryState.PENDING else None,
        message_id=row["message_id"],
        event=row["event"],
    )
