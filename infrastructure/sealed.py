"""Credentials kept at rest sealed: alert channels' URLs (bot tokens, SMTP passwords, webhook
paths with tokens in them) and rules' webhook signing secrets are stored encrypted, so a
database dump or a backup gives none of them away.

Fernet (AES-128-CBC with an HMAC-SHA256 tag, from ``cryptography``) under a key derived from
the server's secret key (``VKCP_SECRET_KEY``, or the key kept in the data dir:
``infrastructure/secret_key.py``): every process that delivers alerts reads the same key. A
stored value reads ``sealed:v1:<token>``; the prefix names the scheme so a later one can be told
apart. A value that cannot be opened (the secret key changed since it was stored, or the row
was tampered with) raises ``Unreadable``, whose text names the cause and never the value.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "sealed:v1:"
_CONTEXT = b"vkcp alert credentials v1\0"


class Unreadable(Exception):
    """A stored credential this server cannot open."""


class Sealer:
    def __init__(self, secret_key: bytes) -> None:
        derived = hashlib.sha256(_CONTEXT + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "Sealer(<key>)"

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            raise Unreadable("the stored credential is not sealed (written by something other than this server)")
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise Unreadable(
                "the stored credential cannot be opened with this server's secret key (VKCP_SECRET_KEY or the "
                "data dir's key changed since it was saved): enter the channel again"
            ) from None
