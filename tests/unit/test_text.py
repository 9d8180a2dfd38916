"""Text users give us must be text both databases can hold; what cannot is refused by field."""

import pytest

from domain.errors import InvalidInput
from domain.text import checked_text


@pytest.mark.parametrize("text", ["", "кошка", "ёлка 🎄", "tab\tand\nnewline", "\u200b\ufeff"])
def test_storable_text_passes_unchanged(text: str) -> None:
    assert checked_text(text, field="word") == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [("ко\x00шка", "NUL"), ("\x00", "NUL"), ("a\ud800", "lone surrogate"), ("\udfff b", "lone surrogate")],
)
def test_unstorable_text_is_refused_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        checked_text(text, field="category")
    assert refused.value.field == "category"
    assert reason in refused.value.message and "`category`" in refused.value.message
