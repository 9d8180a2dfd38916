"""Alerts' vocabulary and policy, without I/O: rules and channels (masked for display), what a
message says (ru/en), retry backoff, per-channel rate limits and how claimed deliveries are
split into messages. The use cases that store, queue and send them are ``domain.alerts``.
"""

from __future__ import annotations

import base64
import enum
import random
import re
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from domain.errors import InvalidInput
from domain.models import UNSET, CommentStatus, Unset
from domain.queries import CommentFilter

MAX_RULE_NAME = 200
MAX_CHANNELS = 10
MAX_CHANNEL_URL = 2000
MAX_DIGEST_MINUTES = 7 * 24 * 60
MAX_THRESHOLD_COUNT = 100_000
GIVE_UP_AFTER = timedelta(hours=24)  # retries stop then: the delivery is FAILED
FIRST_RETRY = 2.0  # seconds; doubles per attempt (with full jitter) up to MAX_RETRY
MAX_RETRY = 30 * 60.0
SEND_TIMEOUT = 20.0  # seconds for one message to one channel
CLAIM_LIMIT = 1000  # rows of one (rule, channel) per claim
DIGEST_ITEMS = 5  # comments a folded message shows
CHANNEL_FAILING_AFTER = timedelta(hours=1)
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # `vkcp serve`'s default address, when VKCP_PUBLIC_URL is unset


class AlertMode(enum.StrEnum):
    INSTANT = "INSTANT"
    DIGEST = "DIGEST"
    THRESHOLD = "THRESHOLD"


class AlertLanguage(enum.StrEnum):
    RU = "ru"
    EN = "en"


class SystemEvent(enum.StrEnum):
    TASK_FAILED = "TASK_FAILED"
    TOKENS_DOWN = "TOKENS_DOWN"  # every VK token parked or revoked
    COMMUNITY_LATE = "COMMUNITY_LATE"  # a monitored community's last success older than 2 intervals
    TASK_STALLED = "TASK_STALLED"
    CHANNEL_FAILING = "CHANNEL_FAILING"  # a channel's deliveries have failed for an hour


class ChannelKind(enum.StrEnum):
    WEBHOOK = "WEBHOOK"
    APPRISE = "APPRISE"


class InvalidChannel(InvalidInput):
    """A channel URL that is no webhook and no Apprise URL this server can send to."""


# --- channels -------------------------------------------------------------------------------

_SECRET_MARK = "****"


def channel_kind(url: str) -> ChannelKind:
    scheme = url.split("://", 1)[0].lower()
    return ChannelKind.WEBHOOK if scheme in ("http", "https") else ChannelKind.APPRISE


def _hide(part: str) -> str:
    """A part of a URL that may be a secret: its last 4 characters when it is long enough that
    they give nothing away, else nothing."""
    return _SECRET_MARK + part[-4:] if len(part) >= 16 else _SECRET_MARK


def _looks_secret(part: str) -> bool:
    # Tokens are long and mix letters with digits; names, hosts and paths seldom are.
    return len(part) >= 12 and bool(re.search(r"\d", part)) and bool(re.search(r"[A-Za-z]", part))


def _mask_part(part: str) -> str:
    return _hide(part) if _looks_secret(part) else part


def mask_channel(url: str) -> str:
    """The URL with whatever may be a secret hidden: passwords always, query values (but
    e-mail addresses), and every long mixed letters-and-digits part (bot tokens, webhook
    keys). Deterministic: a client may send the masked form back to keep the channel."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path_query = rest.partition("/")
    path, _, query = path_query.partition("?")
    if not slash and "?" in netloc:
        netloc, _, query = netloc.partition("?")
    userinfo, at, hostport = netloc.rpartition("@")
    masked_netloc = ""
    if at:
        user, colon, _password = userinfo.partition(":")
        masked_netloc = _mask_part(user) + (":" + _SECRET_MARK if colon else "") + "@"
    host, colon, port = hostport.partition(":")
    masked_netloc += _mask_part(host)
    if colon:
        masked_netloc += ":" + (port if port.isdigit() else _hide(port))
    masked = f"{scheme.lower()}://{masked_netloc}"
    if slash:
        masked += "/" + "/".join(_mask_part(p) for p in path.split("/"))
    if query:
        pairs = [
            (k, v if "@" in v and not _looks_secret(v.split("@")[0]) else _hide(v))
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        masked += "?" + urlencode(pairs, safe="*@")
    return masked


def check_channel_url(url: str, supports: Callable[[str], bool] | None) -> str:
    """The URL, stripped; InvalidChannel when it cannot be sent to. ``supports`` says whether
    the Apprise adapter can send to a non-webhook URL (None: not checked here)."""
    url = url.strip()
    if not url:
        raise InvalidChannel("A channel URL is empty", field="channels")
    if len(url) > MAX_CHANNEL_URL:
        raise InvalidChannel(f"A channel URL is longer than {MAX_CHANNEL_URL} characters", field="channels")
    if "://" not in url or any(c.isspace() for c in url):
        raise InvalidChannel(f"'{mask_channel(url)}' is not a URL (scheme://...)", field="channels")
    if _SECRET_MARK in url:
        raise InvalidChannel("A masked channel URL names no channel of this rule", field="channels")
    if channel_kind(url) is ChannelKind.WEBHOOK:
        parts = urlsplit(url)
        if not parts.hostname:
            raise InvalidChannel(f"The webhook URL '{mask_channel(url)}' has no host", field="channels")
        return url
    if supports is not None and not supports(url):
        scheme = url.split("://", 1)[0]
        raise InvalidChannel(
            f"'{scheme}://' is no channel this server can send to (see Apprise's list of services), "
            f"or the URL misses what the service needs",
            field="channels",
        )
    return url


@dataclass
class AlertChannel:
    id: int | None
    url: str = field(repr=False)  # secrets inside: never returned by the API, never logged
    # Why a stored channel cannot be used (its sealed credentials could not be opened); then
    # ``url`` is the masked form it was saved with, and nothing is sent to it.
    unreadable: str | None = None

    @property
    def masked(self) -> str:
        return self.url if self.unreadable is not None else mask_channel(self.url)

    @property
    def kind(self) -> ChannelKind:
        return channel_kind(self.url)


# --- rules ----------------------------------------------------------------------------------


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class AlertRule:
    id: int | None
    name: str
    mode: AlertMode
    filter: CommentFilter
    channels: list[AlertChannel]
    enabled: bool = True
    muted_until: datetime | None = None
    digest_minutes: int | None = None
    threshold_count: int | None = None
    threshold_minutes: int | None = None
    language: AlertLanguage = AlertLanguage.EN
    system_events: tuple[SystemEvent, ...] = ()
    webhook_secret: str = field(default="", repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_system(self) -> bool:
        return bool(self.system_events)

    def active(self, now: datetime) -> bool:
        return self.enabled and (self.muted_until is None or self.muted_until <= now)


@dataclass
class RuleInput:
    """What a client gives for a rule; for an update, UNSET fields stay as they are."""

    name: str | Unset = UNSET
    enabled: bool | Unset = UNSET
    muted_until: datetime | Unset | None = UNSET
    filter: CommentFilter | Unset = UNSET
    mode: AlertMode | Unset = UNSET
    channels: Sequence[str] | Unset = UNSET
    digest_minutes: int | Unset | None = UNSET
    threshold_count: int | Unset | None = UNSET
    threshold_minutes: int | Unset | None = UNSET
    language: AlertLanguage | Unset = UNSET
    system_events: Sequence[SystemEvent] | Unset = UNSET


def _given(value: Any, current: Any) -> Any:
    return current if isinstance(value, Unset) else value


def apply_changes(rule: AlertRule, change: RuleInput, supports: Callable[[str], bool] | None) -> AlertRule:
    name = str(_given(change.name, rule.name)).strip()
    if not name:
        raise InvalidInput("A rule needs a name", field="name")
    if len(name) > MAX_RULE_NAME:
        raise InvalidInput(f"`name` is longer than {MAX_RULE_NAME} characters", field="name")
    mode = _given(change.mode, rule.mode)
    digest = _given(change.digest_minutes, rule.digest_minutes)
    count = _given(change.threshold_count, rule.threshold_count)
    window = _given(change.threshold_minutes, rule.threshold_minutes)
    if mode is AlertMode.DIGEST:
        if digest is None:
            raise InvalidInput("A DIGEST rule needs `digestMinutes`", field="digestMinutes")
        if not 1 <= digest <= MAX_DIGEST_MINUTES:
            raise InvalidInput(f"`digestMinutes` must be between 1 and {MAX_DIGEST_MINUTES}", field="digestMinutes")
    if mode is AlertMode.THRESHOLD:
        if count is None or window is None:
            field_name = "thresholdCount" if count is None else "thresholdMinutes"
            raise InvalidInput("A THRESHOLD rule needs `thresholdCount` and `thresholdMinutes`", field=field_name)
        if not 1 <= count <= MAX_THRESHOLD_COUNT:
            raise InvalidInput(f"`thresholdCount` must be between 1 and {MAX_THRESHOLD_COUNT}", field="thresholdCount")
        if not 1 <= window <= MAX_DIGEST_MINUTES:
            raise InvalidInput(
                f"`thresholdMinutes` must be between 1 and {MAX_DIGEST_MINUTES}", field="thresholdMinutes"
            )
    channels = rule.channels
    if not isinstance(change.channels, Unset):
        given = list(dict.fromkeys(u.strip() for u in change.channels))
        if not given:
            raise InvalidChannel("A rule needs at least one channel", field="channels")
        if len(given) > MAX_CHANNELS:
            raise InvalidChannel(f"A rule has at most {MAX_CHANNELS} channels", field="channels")
        kept = {c.masked: c for c in rule.channels}
        channels = []
        for url in given:
            if url in kept:  # the masked form the API showed: keep that channel as it is
                channels.append(kept[url])
            else:
                channels.append(AlertChannel(id=None, url=check_channel_url(url, supports)))
    system_events = tuple(dict.fromkeys(_given(change.system_events, rule.system_events)))
    return replace(
        rule,
        name=name,
        mode=mode,
        digest_minutes=digest if mode is AlertMode.DIGEST else None,
        threshold_count=count if mode is AlertMode.THRESHOLD else None,
        threshold_minutes=window if mode is AlertMode.THRESHOLD else None,
        enabled=bool(_given(change.enabled, rule.enabled)),
        muted_until=_given(change.muted_until, rule.muted_until),
        filter=_given(change.filter, rule.filter),
        channels=channels,
        language=_given(change.language, rule.language),
        system_events=system_events,
    )


# --- the filter as stored -------------------------------------------------------------------

_FILTER_IDS = ("group_ids", "post_ids", "keyword_ids", "author_ids")
_FILTER_FLAGS = ("matched", "viewed", "archived", "deleted", "edited")
_FILTER_TEXTS = ("text", "query")  # ``query``: the rule language (domain/rules.py)
_FILTER_NAMES = ("assignees", "tags")  # the review workflow's; ``statuses`` by their names


def filter_to_json(flt: CommentFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FILTER_IDS:
        value = getattr(flt, name)
        if value is not None:
            out[name] = list(value)
    for name in _FILTER_FLAGS:
        if getattr(flt, name) is not None:
            out[name] = getattr(flt, name)
    for name in _FILTER_TEXTS:
        if getattr(flt, name) is not None:
            out[name] = getattr(flt, name)
    for name in _FILTER_NAMES:
        if getattr(flt, name) is not None:
            out[name] = list(getattr(flt, name))
    if flt.statuses is not None:
        out["statuses"] = [s.name for s in flt.statuses]
    for name in ("since", "until"):
        if getattr(flt, name) is not None:
            out[name] = getattr(flt, name).isoformat()
    return out


def filter_from_json(data: dict[str, Any]) -> CommentFilter:
    values: dict[str, Any] = {}
    for name in (*_FILTER_IDS, *_FILTER_NAMES):
        if data.get(name) is not None:
            values[name] = tuple(data[name])
    for name in (*_FILTER_FLAGS, *_FILTER_TEXTS):
        if data.get(name) is not None:
            values[name] = data[name]
    if data.get("statuses") is not None:
        values["statuses"] = tuple(CommentStatus[s] for s in data["statuses"])
    for name in ("since", "until"):
        if data.get(name) is not None:
            values[name] = datetime.fromisoformat(data[name])
    return CommentFilter(**values)


# --- what a message says --------------------------------------------------------------------


@dataclass(frozen=True)
class AlertComment:
    """A matched comment as a message shows it."""

    comment_id: int
    text: str
    author_id: int
    author_name: str | None
    group_id: int
    group_name: str
    published_at: datetime
    url: str  # on VK
    matches: tuple[tuple[str, str], ...]  # (keyword, snippet)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.comment_id,
            "text": self.text,
            "author": {"vkId": self.author_id, "name": self.author_name},
            "community": {"id": self.group_id, "name": self.group_name},
            "time": self.published_at.astimezone(UTC).isoformat(),
            "url": self.url,
            "matches": [{"keyword": k, "snippet": s} for k, s in self.matches],
        }


@dataclass
class PendingDelivery:
    """A claimed outbox row, with what its message needs."""

    id: int
    rule_id: int
    channel_id: int
    comment_id: int | None
    event_key: str
    event: dict[str, Any] | None
    attempts: int
    created_at: datetime
    message_id: str | None = None


@dataclass(frozen=True)
class AlertMessage:
    message_id: str  # the webhook-id: the same on every retry of this message
    title: str
    body: str  # plain text (Apprise channels)
    payload: dict[str, Any]  # the webhook's JSON


@dataclass(frozen=True)
class SendResult:
    ok: bool
    detail: str  # what the channel answered (an HTTP status, Apprise's verdict), secrets masked


_TEXTS = {
    AlertLanguage.EN: {
        "match": "“{rule}”: a new match in {group}",
        "digest": "“{rule}”: {n} new matching comments",
        "threshold": "“{rule}”: {n} matching comments within {minutes} min",
        "by": "by",
        "open": "Open in the console",
        "more": "…and {n} more",
        "test": "“{rule}”: a test message — this channel works",
        "system": "VK Comments Parser: {what}",
    },
    AlertLanguage.RU: {
        "match": "«{rule}»: новое совпадение в {group}",
        "digest": "«{rule}»: новых подходящих комментариев: {n}",
        "threshold": "«{rule}»: {n} подходящих комментариев за {minutes} мин",
        "by": "автор",
        "open": "Открыть в консоли",
        "more": "…и ещё {n}",
        "test": "«{rule}»: тестовое сообщение — канал работает",
        "system": "VK Comments Parser: {what}",
    },
}


def review_link(public_url: str, rule: AlertRule) -> str:
    """The console's Review with the rule's filter (its communities and keywords)."""
    query: dict[str, str] = {}
    flt = rule.filter
    if flt.group_ids:
        query["groupIds"] = ",".join(map(str, flt.group_ids))
    if flt.keyword_ids:
        query["keywordIds"] = ",".join(map(str, flt.keyword_ids))
    if flt.text:
        query["text"] = flt.text
    suffix = "?" + urlencode(query, quote_via=quote) if query else ""
    return f"{public_url.rstrip('/')}/#/review{suffix}"


def _comment_lines(c: AlertComment, texts: dict[str, str]) -> str:
    snippet = c.text if len(c.text) <= 300 else c.text[:297] + "…"
    author = c.author_name or f"id{c.author_id}"
    keywords = ", ".join(dict.fromkeys(k for k, _ in c.matches))
    return f"{snippet}\n— {texts['by']} {author}, {c.group_name} [{keywords}]\n{c.url}"


def compose_message(
    rule: AlertRule, message_id: str, items: Sequence[AlertComment], *, public_url: str, kind: str
) -> AlertMessage:
    """One message for ``items``: ``kind`` "match" (one comment), "digest" or "threshold"."""
    texts = _TEXTS[rule.language]
    link = review_link(public_url, rule)
    first = items[0]
    if kind == "match":
        title = texts["match"].format(rule=rule.name, group=first.group_name)
        body = _comment_lines(first, texts) + f"\n{texts['open']}: {link}"
    else:
        key = "threshold" if kind == "threshold" else "digest"
        title = texts[key].format(rule=rule.name, n=len(items), minutes=rule.threshold_minutes)
        shown = [_comment_lines(c, texts) for c in items[:DIGEST_ITEMS]]
        if len(items) > DIGEST_ITEMS:
            shown.append(texts["more"].format(n=len(items) - DIGEST_ITEMS))
        body = "\n\n".join(shown) + f"\n\n{texts['open']}: {link}"
    payload: dict[str, Any] = {
        "type": f"alert.{kind}",
        "rule": {"id": rule.id, "name": rule.name, "mode": rule.mode.value},
        "count": len(items),
        "consoleUrl": link,
        "comments": [c.as_json() for c in items[: max(DIGEST_ITEMS, 1) if kind != "match" else 1]],
    }
    if kind == "match":
        payload["comment"] = first.as_json()
        payload["matches"] = payload["comment"]["matches"]
    return AlertMessage(message_id=message_id, title=title, body=body, payload=payload)


def compose_system_message(
    rule: AlertRule, message_id: str, events: Sequence[dict[str, Any]], public_url: str
) -> AlertMessage:
    texts = _TEXTS[rule.language]
    key = "text_ru" if rule.language is AlertLanguage.RU else "text_en"
    lines = [str(e.get(key) or e.get("text_en") or e.get("kind")) for e in events]
    title = texts["system"].format(what=lines[0] if len(lines) == 1 else f"{len(lines)}")
    body = "\n".join(lines) + f"\n{texts['open']}: {public_url.rstrip('/')}/"
    payload = {
        "type": "alert.system",
        "rule": {"id": rule.id, "name": rule.name, "mode": rule.mode.value},
        "count": len(events),
        "events": list(events),
        "consoleUrl": public_url.rstrip("/") + "/",
    }
    return AlertMessage(message_id=message_id, title=title, body=body, payload=payload)


def test_message(rule: AlertRule, public_url: str) -> AlertMessage:
    texts = _TEXTS[rule.language]
    link = review_link(public_url, rule)
    message_id = "msg_test_" + secrets.token_hex(8)
    return AlertMessage(
        message_id=message_id,
        title=texts["test"].format(rule=rule.name),
        body=f"{texts['open']}: {link}",
        payload={
            "type": "alert.test",
            "rule": {"id": rule.id, "name": rule.name, "mode": rule.mode.value},
            "count": 0,
            "consoleUrl": link,
            "comments": [],
        },
    )


# --- delivery policy ------------------------------------------------------------------------


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential with full jitter
    (AWS's "full jitter": uniform between half and the whole capped exponential step)."""
    step = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(step / 2, step)


def next_attempt(
    created_at: datetime, attempts: int, now: datetime, rng: random.Random | None = None
) -> datetime | None:
    """When to try again after ``attempts`` failures; None once ``GIVE_UP_AFTER`` has passed."""
    if now - created_at >= GIVE_UP_AFTER:
        return None
    return min(now + timedelta(seconds=retry_delay(attempts, rng)), created_at + GIVE_UP_AFTER)


@dataclass(frozen=True)
class RateLimit:
    messages: int
    per_seconds: float


def rate_limits_for(url: str) -> list[tuple[str, RateLimit]]:
    """(bucket key, limit) pairs a message to ``url`` counts against. Telegram: about 30
    messages a second per bot, and 20 a minute per group chat (taken for every chat). Others:
    no limit known here (their servers answer 429, which is retried)."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ("tgram", "telegram"):
        bot = parts.hostname or ""
        chats = [p for p in parts.path.split("/") if p] or ["?"]
        return [(f"tgram-bot:{bot}", RateLimit(30, 1.0))] + [
            (f"tgram-chat:{bot}:{chat}", RateLimit(20, 60.0)) for chat in chats
        ]
    return []


@dataclass
class Reservation:
    """Messages a (rule, channel) may send now, taken from its channel's budget at once, so two
    pairs sharing a chat (two rules, two workers) never both spend the same allowance."""

    url: str = field(repr=False)
    granted: int | None  # None: no limit known for this channel
    now: float = 0.0
    handle: str = ""  # the budget's own mark of what it took (members in Redis)


class LocalSendBudget:
    """``domain.ports.SendBudget`` within one process: sliding windows per bucket. What a
    deployment with several workers shares through Redis (``infrastructure/alert_budget.py``)."""

    def __init__(self) -> None:
        self._sent: dict[str, deque[float]] = {}

    def _window(self, key: str, limit: RateLimit, now: float) -> deque[float]:
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - limit.per_seconds:
            sent.popleft()
        return sent

    async def reserve(self, url: str, wanted: int, now: float) -> Reservation:
        limits = rate_limits_for(url)
        if not limits:
            return Reservation(url, None, now)
        granted = max(0, min([wanted] + [lim.messages - len(self._window(k, lim, now)) for k, lim in limits]))
        for key, _ in limits:
            self._sent[key].extend([now] * granted)
        return Reservation(url, granted, now)

    async def give_back(self, reservation: Reservation, unused: int) -> None:
        for key, _ in rate_limits_for(reservation.url):
            sent = self._sent.get(key)
            for _ in range(unused):
                if sent and reservation.now in sent:
                    sent.remove(reservation.now)

    async def retry_in(self, url: str, now: float) -> float:
        """Seconds until one more message may go."""
        waits = [0.0]
        for key, limit in rate_limits_for(url):
            sent = self._window(key, limit, now)
            if len(sent) >= limit.messages:
                waits.append(sent[len(sent) - limit.messages] + limit.per_seconds - now)
        return max(waits)


@dataclass
class Batch:
    """Rows that go out as one message."""

    rows: list[PendingDelivery]
    kind: str  # "match", "digest", "threshold", "system"
    message_id: str


def _message_id(rows: Sequence[PendingDelivery]) -> str:
    if len(rows) == 1:
        return f"msg_d{rows[0].id}"
    return f"msg_d{rows[0].id}_{rows[-1].id}_{len(rows)}"


def plan_batches(
    rule: AlertRule, rows: list[PendingDelivery], *, now: datetime, allowed: int | None,
    last_sent: datetime | None = None,
) -> tuple[list[Batch], list[PendingDelivery], list[PendingDelivery]]:
    """Split a (rule, channel)'s claimed rows into messages.

    Returns (batches to send, rows to skip, rows to put back untouched). Rows a failed try
    already put in a message go out in that same message again (same id). ``allowed`` is what
    the channel's rate limit lets through now (None: no limit): an INSTANT burst beyond it goes
    as ``allowed - 1`` single messages and one digest of the rest. A THRESHOLD rule sends one
    message per window: ``last_sent`` (its last message to this channel) starts one, and the
    matches within it are SKIPPED, covered by that message."""
    batches: list[Batch] = []
    by_message: dict[str, list[PendingDelivery]] = {}
    fresh: list[PendingDelivery] = []
    for row in rows:
        if row.message_id is not None:
            by_message.setdefault(row.message_id, []).append(row)
        else:
            fresh.append(row)
    for message_id, grouped in by_message.items():
        kind = (
            "system"
            if rule.is_system
            else ("match" if len(grouped) == 1 and rule.mode is AlertMode.INSTANT else rule.mode.value.lower())
        )
        batches.append(Batch(grouped, kind, message_id))
    skip: list[PendingDelivery] = []
    back: list[PendingDelivery] = []
    if not fresh:
        return batches, skip, back
    if rule.is_system:
        batches.append(Batch(fresh, "system", _message_id(fresh)))
    elif rule.mode is AlertMode.DIGEST:
        assert rule.digest_minutes is not None
        if min(r.created_at for r in fresh) <= now - timedelta(minutes=rule.digest_minutes):
            batches.append(Batch(fresh, "digest", _message_id(fresh)))
        else:
            back = fresh
    elif rule.mode is AlertMode.THRESHOLD:
        assert rule.threshold_minutes is not None and rule.threshold_count is not None
        window_length = timedelta(minutes=rule.threshold_minutes)
        if last_sent is not None and now < last_sent + window_length:
            # The window already alerted: its later matches are in it, not a window of their own.
            return batches, fresh, back
        start = now - window_length
        skip = [r for r in fresh if r.created_at < start]
        window = [r for r in fresh if r.created_at >= start]
        if len(window) >= rule.threshold_count:
            batches.append(Batch(window, "threshold", _message_id(window)))
        else:
            back = window
    else:
        budget = len(fresh) if allowed is None else allowed - len(batches)
        if budget <= 0:
            back = fresh
        elif len(fresh) <= budget:
            batches.extend(Batch([r], "match", _message_id([r])) for r in fresh)
        else:
            singles, rest = fresh[: budget - 1], fresh[budget - 1 :]
            batches.extend(Batch([r], "match", _message_id([r])) for r in singles)
            batches.append(Batch(rest, "digest", _message_id(rest)))
    return batches, skip, back


@dataclass
class DeliveryStats:
    """What this process's deliverer did (``/metrics`` reads the outbox itself, every process's)."""

    sent: int = 0  # rows
    failed: int = 0  # rows given up on
    retried: int = 0  # rows tried again later
    skipped: int = 0
    messages: int = 0


def scrub(text: str, url: str) -> str:
    """``text`` with every part of ``url`` that may be a secret masked."""
    _scheme, _, rest = url.partition("://")
    candidates = re.split(r"[/:@?&=#]", rest)
    userinfo = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for part in sorted({p for p in candidates if _looks_secret(p)} | ({password} if password else set()),
                       key=len, reverse=True):
        text = text.replace(part, _hide(part))
    return text[:1000]
