"""What a user may paste as a community reference, and what they are told when it is wrong."""

import pytest

from domain.errors import InvalidReference
from domain.groups import GroupRef, parse_group_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("123", GroupRef(vk_id=123)),
        ("-123", GroupRef(vk_id=123)),
        ("club123", GroupRef(vk_id=123)),
        ("public77", GroupRef(vk_id=77)),
        ("event5", GroupRef(vk_id=5)),
        ("vk.com/club123", GroupRef(vk_id=123)),
        ("https://vk.com/public123", GroupRef(vk_id=123)),
        ("https://vk.com/koshki_spb", GroupRef(screen_name="koshki_spb")),
        ("http://m.vk.com/Koshki_SPb/", GroupRef(screen_name="koshki_spb")),
        ("https://vk.com/koshki_spb?w=wall-1_2", GroupRef(screen_name="koshki_spb")),
        ("  koshki_spb  ", GroupRef(screen_name="koshki_spb")),
        ("apiclub", GroupRef(screen_name="apiclub")),
        ("9" * 18, GroupRef(vk_id=int("9" * 18))),
    ],
)
def test_understands_ids_screen_names_and_links(ref, expected):
    assert parse_group_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0", "not a valid group id"),
        ("https://example.com/club1", "not a vk.com link"),
        ("ftp://vk.com/club1", "not a vk.com link"),
        ("https://vk.com/", "does not point at a community"),
        ("https://vk.com/wall-1_2/extra", "does not point at a community"),
        ("кошки", "is not a VK community"),
        ("a b", "is not a VK community"),
        ("http://[::1", "not a valid URL"),
        # Digits to str.isdigit(), not to int() (or not ASCII): no id.
        ("③", "is not a VK community"),
        ("club①", "is not a VK community"),
        ("١٢٣", "is not a VK community"),
        ("--123", "is not a VK community"),
        ("-", "is not a VK community"),
    ],
)
def test_rejects_what_is_not_a_community_reference(ref, message):
    with pytest.raises(InvalidReference) as caught:
        parse_group_ref(ref)
    assert message in caught.value.message
    assert caught.value.field == "ref"
