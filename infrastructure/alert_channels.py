"""Sending alert messages (``domain.ports.AlertSender``), with libraries, not hand-written clients.

- ``http(s)://``: a webhook. The JSON payload is signed per Standard Webhooks with the
  ``standardwebhooks`` package: ``webhook-id`` (the message's id, the same on every retry),
  ``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256 with the rule's ``whsec_`` secret).
  Any 2xx is delivered; anything else (or no answer) is a failed try.
- anything else: an Apprise URL (``tgram://``, ``mailtos://``, ``slack://``, ``json://``, ...),
  sent by the ``apprise`` package; its log lines of the send (which say why one failed) are the
  failure's detail. Apprise's own log output is kept out of ours: it may echo a URL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import apprise
import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from domain.alert_model import AlertMessage, ChannelKind, SendResult, channel_kind

USER_AGENT = "vkcp-alerts/1"
# Apprise logs every send at INFO and the failures' reasons at WARNING: nothing of it reaches
# the service's log (a line may hold a URL with a token); a failure's reason is captured instead.
logging.getLogger("apprise").propagate = False
logging.getLogger("apprise").addHandler(logging.NullHandler())


class ChannelSender:
    """Webhooks over one pooled HTTP client; Apprise URLs through Apprise."""

    def __init__(self, *, timeout: float = 15.0) -> None:
        self._http = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False)
        self._apprise_lock = asyncio.Lock()  # LogCapture hooks a global logger: one capture at a time

    async def aclose(self) -> None:
        await self._http.aclose()

    def supports(self, url: str) -> bool:
        if channel_kind(url) is ChannelKind.WEBHOOK:
            return True
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None

    async def send(self, url: str, message: AlertMessage, *, secret: str) -> SendResult:
        if channel_kind(url) is ChannelKind.WEBHOOK:
            return await self._webhook(url, message, secret)
        return await self._apprise(url, message)

    async def _webhook(self, url: str, message: AlertMessage, secret: str) -> SendResult:
        body = orjson.dumps(message.payload)
        now = datetime.now(UTC)
        signature = Webhook(secret).sign(message.message_id, now, body.decode())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as e:
            return SendResult(False, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        detail = f"HTTP {response.status_code}"
        if not response.is_success:
            text = response.text.strip()[:200]
            return SendResult(False, f"{detail}: {text}" if text else detail)
        return SendResult(True, detail)

    async def _apprise(self, url: str, message: AlertMessage) -> SendResult:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return SendResult(False, "Apprise cannot send to this URL")
        async with self._apprise_lock:
            with apprise.LogCapture(level=apprise.logging.WARNING) as captured:
                ok = bool(await notifier.async_notify(body=message.body, title=message.title))
                said = captured.getvalue().strip()
        if ok:
            return SendResult(True, "accepted")
        return SendResult(False, said.splitlines()[-1][:500] if said else "the service refused the message")
