"""The README's webhook receiver, run as written: a message signed the way the service signs
(Standard Webhooks, the `standardwebhooks` package) is accepted once, a retry of it is not
handled again, and a changed body or another rule's secret is refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]


def readme_receiver(secret: str) -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (code,) = [b for b in blocks if "hook.verify(" in b]
    assert 'Webhook("whsec_...")' in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("whsec_...", secret), "README.md", "exec"), namespace)
    return namespace


def signed(secret: str, message_id: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    now = datetime.now(UTC)
    return body, {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
    }


async def test_the_readme_receiver_verifies_and_dedupes(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    other = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    receiver = readme_receiver(secret)
    payload = {"type": "alert.match", "rule": {"id": "1", "name": "Кошки", "mode": "INSTANT"}, "count": 1}
    body, headers = signed(secret, "msg_1", payload)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver["app"]), base_url="http://receiver") as client:
        assert (await client.post("/vkcp", content=body, headers=headers)).status_code == 204
        assert (await client.post("/vkcp", content=body, headers=headers)).status_code == 204  # a retry
        tampered = body.replace("Кошки".encode(), "Собаки".encode())
        assert (await client.post("/vkcp", content=tampered, headers=headers)).status_code == 401
        body2, headers2 = signed(other, "msg_2", payload)
        assert (await client.post("/vkcp", content=body2, headers=headers2)).status_code == 401
        unsigned = {k: v for k, v in headers.items() if k != "webhook-signature"}
        assert (await client.post("/vkcp", content=body, headers=unsigned)).status_code == 401
    assert capsys.readouterr().out == "alert.match Кошки 1\n"  # handled once
    assert receiver["seen"] == {"msg_1"}
