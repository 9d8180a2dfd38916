"""Alert credentials sealed at rest (infrastructure/sealed.py): a round trip, a fresh token per
seal, and a value sealed under another key (or not sealed at all) refused with a text that
names the cause and never the value."""

from __future__ import annotations

import pytest

from infrastructure.sealed import PREFIX, Sealer, Unreadable

URL = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"


def test_a_sealed_credential_opens_with_the_same_key_only() -> None:
    sealer = Sealer(b"k" * 32)
    sealed = sealer.seal(URL)
    assert sealed.startswith(PREFIX) and "AAHdqTcv" not in sealed
    assert sealer.seal(URL) != sealed  # a fresh IV each time: equal secrets do not look equal at rest
    assert sealer.open(sealed) == URL
    assert Sealer(b"k" * 32).open(sealed) == URL  # every process with the key reads it
    with pytest.raises(Unreadable, match="VKCP_SECRET_KEY") as caught:
        Sealer(b"x" * 32).open(sealed)
    assert "AAHdqTcv" not in str(caught.value) and "AAHdqTcv" not in repr(Sealer(b"k" * 32))


@pytest.mark.parametrize("stored", [URL, PREFIX + "not-a-token", PREFIX + "ä", ""])
def test_what_is_not_a_sealed_value_is_unreadable(stored: str) -> None:
    with pytest.raises(Unreadable) as caught:
        Sealer(b"k" * 32).open(stored)
    assert "AAHdqTcv" not in str(caught.value)
