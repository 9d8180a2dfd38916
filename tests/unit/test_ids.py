"""Global ids: one spelling per object, plain row ids still accepted, other types refused."""

from __future__ import annotations

import base64

import pytest

from domain.errors import InvalidInput, NotFound
from graphql_api.codes import ErrorCode, code_of
from graphql_api.ids import NodeType, decode_id, filter_ids, find_id, global_id, parse_id


def test_a_global_id_is_base64_of_type_and_row_id_and_reads_back() -> None:
    assert global_id(NodeType.GROUP, 1) == "R3JvdXA6MQ==" == base64.b64encode(b"Group:1").decode()
    for kind in NodeType:
        for pk in (1, 42, 10**18 - 1):
            assert decode_id(global_id(kind, pk)) == (kind, pk)
    assert len({global_id(kind, 7) for kind in NodeType}) == len(NodeType)


def test_plain_row_ids_have_no_type() -> None:
    assert decode_id("17") == (None, 17)
    assert decode_id(" 17 ") == (None, 17)
    assert find_id("17", NodeType.TASK) == 17


@pytest.mark.parametrize(
    "value",
    [
        "", "0", "-1", "1.0", "²", "١", "1" * 19, "abc", "R3JvdXA6MQ", "R3JvdXA6MQ=", "R3JvdXA6MQ==\n==",
        base64.b64encode(b"Group:01").decode(), base64.b64encode(b"Group:0").decode(),
        base64.b64encode(b"Group:").decode(), base64.b64encode(b"Group:1:1").decode(),
        base64.b64encode(b"group:1").decode(), base64.b64encode(b"User:1").decode(),
        base64.b64encode(b"Group:\xd9\xa1").decode(), base64.b64encode(b"Group:" + b"1" * 19).decode(),
        base64.b64encode(b"Comment:1023").decode().lower(),
        "R3JvdXA6MQ==" * 10,
    ],
)
def test_what_we_never_handed_out_names_nothing(value: str) -> None:
    assert decode_id(value) is None
    assert find_id(value, NodeType.GROUP) is None
    with pytest.raises(NotFound):
        parse_id(value, NodeType.GROUP)


def test_a_global_id_of_another_type_is_an_error_not_a_row_id() -> None:
    keyword = global_id(NodeType.KEYWORD, 1)
    with pytest.raises(InvalidInput) as refused:
        find_id(keyword, NodeType.GROUP, field="groupIds")
    assert code_of(refused.value) is ErrorCode.BAD_USER_INPUT and refused.value.field == "groupIds"
    assert "Keyword" in refused.value.message and "Group" in refused.value.message
    with pytest.raises(InvalidInput):
        filter_ids([global_id(NodeType.GROUP, 1), keyword], NodeType.GROUP, field="groupIds")


def test_filters_take_both_spellings_once_and_drop_what_names_nothing() -> None:
    ids = ["1", global_id(NodeType.GROUP, 1), global_id(NodeType.GROUP, 2), "nonsense", "3"]
    assert filter_ids(ids, NodeType.GROUP, field="groupIds") == (1, 2, 3)
    assert filter_ids([], NodeType.GROUP, field="groupIds") == ()
    assert filter_ids(None, NodeType.GROUP, field="groupIds") is None
