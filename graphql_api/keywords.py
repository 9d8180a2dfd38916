"""Keywords: the ``Keyword`` type, the ``keywords`` and ``keyword`` queries, and the mutations
that add, change and remove them. Matching lives in ``domain.keywords`` and ``domain.analyze``;
``startAnalyze``, which re-matches stored comments, starts a task (``tasks.py``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from domain import declaration, models
from domain import keywords as keyword_cases
from domain.queries import ReadModel
from graphql_api.auth import IsOperator
from graphql_api.context import Info
from graphql_api.declared import Declared, declared
from graphql_api.errors import UserError, user_errors, user_errors_in
from graphql_api.ids import NodeType, global_id, parse_id
from graphql_api.relay import After, Before, Connection, First, Last, Node, by_id, connection, window

KeywordId = Annotated[
    strawberry.ID, strawberry.argument(description="Id of the keyword (its global id, or its row id).")
]


@strawberry.type(description="A word or phrase comments are matched against.")
@declared(declaration.KEYWORD)  # every field and relation: domain/declaration.py
class Keyword(Node, Declared):
    NODE_TYPE = NodeType.KEYWORD


KeywordConnection = Connection[Keyword]


def keyword_or_none(keyword: models.Keyword | None) -> Keyword | None:
    return Keyword.from_view(keyword) if keyword is not None else None


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(name="KeywordFilter", description="Which keywords to list. Every given condition must hold.")
class KeywordFilterInput:
    category: str | None = strawberry.field(default=None, description="Only keywords of this category (exact).")
    active: bool | None = strawberry.field(default=None, description="Only active (true) or inactive (false) keywords.")
    text: str | None = strawberry.field(
        default=None, description="Only keywords whose word contains this (case-insensitive, ё = е)."
    )


@strawberry.input(description="A keyword to add.")
class KeywordInput:
    word: str = strawberry.field(description="The word or phrase (1–200 characters).")
    category: str | None = strawberry.field(default=None, description="A free-form group for the keyword.")
    active: bool = strawberry.field(default=True, description="Whether it is matched.")
    case_sensitive: bool = strawberry.field(default=False, description="Whether letter case must match.")
    whole_word: bool = strawberry.field(default=True, description="Whether only whole words match.")
    morphology: bool | None = strawberry.field(
        default=None,
        description="Whether every Russian word form matches; default: on when the word has Cyrillic letters.",
    )


@strawberry.input(description="Changes to a keyword; omitted fields stay as they are. Run startAnalyze to re-match.")
class UpdateKeywordInput:
    word: str | None = strawberry.field(default=strawberry.UNSET, description="The new word or phrase.")
    category: str | None = strawberry.field(default=strawberry.UNSET, description="The new category; null clears it.")
    active: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether it is matched.")
    case_sensitive: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Whether letter case must match."
    )
    whole_word: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Whether only whole words match."
    )
    morphology: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Whether every word form matches."
    )


@strawberry.type(description="The outcome for one item of addKeywords.")
class AddKeywordResult:
    word: str = strawberry.field(description="The word as given.")
    keyword: Keyword | None = strawberry.field(
        description="The added keyword; for a duplicate (error DUPLICATE) the keyword it duplicates."
    )
    errors: list[UserError] = strawberry.field(description="Why this item was not added; empty on success.")


@strawberry.type(description="Result of addKeywords: one result per given keyword, in order.")
class AddKeywordsPayload:
    results: list[AddKeywordResult] = strawberry.field(description="Per-item outcomes, in the order given.")
    keywords: list[Keyword] = strawberry.field(description="The keywords that were added.")
    errors: list[UserError] = strawberry.field(
        description="Errors about the request as a whole (per-item errors are in `results`)."
    )


@strawberry.type(description="Result of updateKeyword.")
class KeywordPayload:
    keyword: Keyword | None = strawberry.field(description="The keyword as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeKeyword.")
class RemoveKeywordPayload:
    removed_keyword_id: strawberry.ID | None = strawberry.field(description="Id of the removed keyword.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


async def keywords_connection(
    read_model: ReadModel, filter: KeywordFilterInput | None = None, first: int | None = None,
    after: str | None = None, last: int | None = None, before: str | None = None,
) -> KeywordConnection:
    flt = filter or KeywordFilterInput()
    conditions = keyword_cases.keyword_search(active=flt.active, category=flt.category, text=flt.text)
    page = await read_model.keywords_page(**window(first, after, last, before), **conditions)
    return connection(page, Keyword.from_view, lambda: read_model.keywords_count(**conditions))


@strawberry.field(description="Keywords, in the order they were added.")
async def keywords(
    info: Info,
    filter: Annotated[KeywordFilterInput | None, strawberry.argument(description="Which keywords.")] = None,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> KeywordConnection:
    return await keywords_connection(info.context.read_model, filter, first, after, last, before)


@strawberry.field(description="One keyword by its id; null when there is none.")
async def keyword(info: Info, id: KeywordId) -> Keyword | None:
    return await by_id(id, NodeType.KEYWORD, info.context.loaders(info).keyword.load, Keyword.from_view)


# --- mutations ------------------------------------------------------------------------------


def _keyword_changes(input: UpdateKeywordInput) -> keyword_cases.KeywordChanges:
    def given(value: Any) -> Any:
        return models.UNSET if value is strawberry.UNSET else value

    return keyword_cases.KeywordChanges(
        word=given(input.word),
        category=given(input.category),
        active=given(input.active),
        case_sensitive=given(input.case_sensitive),
        whole_word=given(input.whole_word),
        morphology=given(input.morphology),
    )


@strawberry.mutation(
    description="Add keywords in bulk (e.g. an imported list); one result per item, in order. "
    "Duplicates (case-insensitive, ё = е) of stored keywords or of earlier items are reported, not added. "
    "Run startAnalyze to match already stored comments.",
    permission_classes=[IsOperator],
)
@user_errors_in(AddKeywordsPayload, results=[], keywords=[])
async def add_keywords(
    info: Info,
    input: Annotated[
        list[KeywordInput],
        strawberry.argument(description=f"The keywords (at most {keyword_cases.MAX_BULK_KEYWORDS})."),
    ],
) -> AddKeywordsPayload:
    items = [
        keyword_cases.KeywordInput(
            word=k.word, category=k.category, active=k.active, case_sensitive=k.case_sensitive,
            whole_word=k.whole_word, morphology=k.morphology,
        )
        for k in input
    ]
    outcomes = await keyword_cases.add_keywords(info.context.adapters, items)
    results = [
        AddKeywordResult(
            word=o.word,
            keyword=Keyword.from_view(o.keyword) if o.keyword is not None else None,
            errors=user_errors(o.error) if o.error is not None else [],
        )
        for o in outcomes
    ]
    added = [r.keyword for r, o in zip(results, outcomes, strict=True) if o.added and r.keyword is not None]
    return AddKeywordsPayload(results=results, keywords=added, errors=[])


@strawberry.mutation(
    description="Change a keyword. Stored matches change only when startAnalyze runs "
    "(pass the keyword's id in `keywordIds`).",
    permission_classes=[IsOperator],
)
@user_errors_in(KeywordPayload, keyword=None)
async def update_keyword(
    info: Info,
    id: KeywordId,
    input: Annotated[UpdateKeywordInput, strawberry.argument(description="The fields to change.")],
) -> KeywordPayload:
    keyword_id = parse_id(id, NodeType.KEYWORD)
    keyword = await keyword_cases.update_keyword(info.context.adapters, keyword_id, _keyword_changes(input))
    info.context.read_model.queries_changed()  # `kw:` references follow the keyword at once
    return KeywordPayload(keyword=Keyword.from_view(keyword), errors=[])


@strawberry.mutation(
    description="Delete a keyword and all its matches; comments' match counts follow at once.",
    permission_classes=[IsOperator],
)
@user_errors_in(RemoveKeywordPayload, removed_keyword_id=None)
async def remove_keyword(info: Info, id: KeywordId) -> RemoveKeywordPayload:
    keyword_id = parse_id(id, NodeType.KEYWORD)
    await keyword_cases.remove_keyword(info.context.adapters, keyword_id)
    info.context.read_model.queries_changed()
    return RemoveKeywordPayload(removed_keyword_id=global_id(NodeType.KEYWORD, keyword_id), errors=[])
