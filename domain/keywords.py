"""Keyword management: bulk add with a result per item, update, remove.

Keywords are de-duplicated case-insensitively ("Кошка", " кошка " and "КОШКА" are one
keyword, so are "ёлка" and "елка": ``domain.matching.keyword_key``), against the stored ones
and within one batch. Morphology is on by default for words with Cyrillic letters: that is
what Russian text needs, and it means nothing for Latin words.

Changing keywords does not touch stored matches except on removal (a removed keyword's matches
go with it, and the comments' match counts follow); an ANALYZE task (``domain/analyze.py``)
re-matches stored comments against the changed keywords.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.matching import keyword_key, normalize_keyword, validate_keyword
from domain.models import UNSET, Keyword, Unset
from domain.ports import Adapters, UnitOfWork
from domain.rule_index import start_rule_indexing
from domain.stats import invalidate_stats
from domain.text import checked_text

MAX_BULK_KEYWORDS = 5000  # keywords per addKeywords call
MAX_CATEGORY_LENGTH = 100

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


class DuplicateKeyword(Conflict):
    """The keyword is stored already, or an earlier item of the same call added it."""


@dataclass(frozen=True)
class KeywordInput:
    word: str
    category: str | None = None
    active: bool = True
    case_sensitive: bool = False
    whole_word: bool = True
    morphology: bool | None = None  # None: on when the word has Cyrillic letters


@dataclass(frozen=True)
class KeywordResult:
    """The outcome for one item of ``add_keywords``.

    ``keyword`` is the new keyword on success; for a duplicate it is the keyword it duplicates
    (stored before, or added by an earlier item), alongside the DUPLICATE error, so an import
    learns every id.
    """

    word: str
    keyword: Keyword | None = None
    error: DomainError | None = None

    @property
    def added(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class KeywordChanges:
    word: str | Unset = UNSET
    category: str | Unset | None = UNSET  # None clears the category
    active: bool | Unset = UNSET
    case_sensitive: bool | Unset = UNSET
    whole_word: bool | Unset = UNSET
    morphology: bool | Unset = UNSET


def default_morphology(word: str) -> bool:
    return _CYRILLIC.search(word) is not None


def normalize_category(category: str | None) -> str | None:
    if category is None:
        return None
    category = " ".join(checked_text(category, field="category").split())
    if len(category) > MAX_CATEGORY_LENGTH:
        raise InvalidInput(f"Category is longer than {MAX_CATEGORY_LENGTH} characters", field="category")
    return category or None


def _checked_word(word: str) -> str:
    problem = validate_keyword(checked_text(word, field="word"))
    if problem is not None:
        raise InvalidInput(problem, field="word")
    return normalize_keyword(word)


def keyword_search(*, active: bool | None, category: str | None, text: str | None) -> dict[str, Any]:
    """The ``keywords`` query's conditions (see ``ReadModel.keywords_page``); blank text is none."""
    if category is not None:
        checked_text(category, field="category")
    if text is not None:
        checked_text(text, field="text")
    return {"active": active, "category": category, "text": (text or "").strip() or None}


async def add_keywords(adapters: Adapters, inputs: Sequence[KeywordInput]) -> list[KeywordResult]:
    """Add many keywords in one transaction; one result per input, in order.

    An invalid or duplicate item is reported and skipped; the others are added.
    """
    if len(inputs) > MAX_BULK_KEYWORDS:
        raise InvalidInput(f"At most {MAX_BULK_KEYWORDS} keywords at once", field="input")
    results: list[KeywordResult] = []
    seen: dict[str, tuple[int, Keyword | None]] = {}  # key -> (position, keyword) of its first item here
    async with adapters.uow_factory() as uow:
        for position, item in enumerate(inputs):
            try:
                word = _checked_word(item.word)
                category = normalize_category(item.category)
                key = keyword_key(word)
                if key in seen:
                    first, keyword = seen[key]
                    error = DuplicateKeyword(f"'{word}' repeats item {first + 1} of this list", field="word")
                    results.append(KeywordResult(item.word, keyword, error))
                    continue
                existing = await uow.keywords.get_by_word(word)
                seen[key] = (position, existing)
                if existing is not None:
                    error = DuplicateKeyword(f"Keyword '{existing.word}' already exists", field="word")
                    results.append(KeywordResult(item.word, existing, error))
                    continue
            except DomainError as e:
                results.append(KeywordResult(item.word, None, e))
                continue
            morphology = default_morphology(word) if item.morphology is None else item.morphology
            keyword = await uow.keywords.add(
                Keyword(
                    id=0,
                    word=word,
                    category=category,
                    active=item.active,
                    case_sensitive=item.case_sensitive,
                    whole_word=item.whole_word,
                    morphology=morphology,
                )
            )
            if keyword is None:  # another request added it meanwhile
                existing = await uow.keywords.get_by_word(word)
                seen[key] = (position, existing)
                error = DuplicateKeyword(f"Keyword '{word}' already exists", field="word")
                results.append(KeywordResult(item.word, existing, error))
                continue
            seen[key] = (position, keyword)
            results.append(KeywordResult(item.word, keyword))
        added = [r.keyword for r in results if r.error is None and r.keyword is not None]
        # A saved rule naming one of these words (its keyword was removed) matches again.
        stale = await uow.rule_matches.invalidate(keyword_words=[keyword_key(k.word) for k in added]) if added else []
        await uow.commit()
    await invalidate_stats(adapters.cache)  # keyword totals and top keywords changed
    if stale:
        await start_rule_indexing(adapters)
    return results


async def update_keyword(adapters: Adapters, keyword_id: int, changes: KeywordChanges) -> Keyword:
    """Change a keyword; stored matches stay until an ANALYZE task re-matches them."""
    async with adapters.uow_factory() as uow:
        keyword = await _get(uow, keyword_id)
        values = {f.name: getattr(changes, f.name) for f in dataclasses.fields(changes)}
        values = {name: value for name, value in values.items() if not isinstance(value, Unset)}
        for name in ("word", "active", "case_sensitive", "whole_word", "morphology"):
            if name in values and values[name] is None:
                field = "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))
                raise InvalidInput(f"{field} cannot be null", field=field)
        if "word" in values:
            values["word"] = _checked_word(values["word"])
            other = await uow.keywords.get_by_word(values["word"])
            if other is not None and other.id != keyword.id:
                raise DuplicateKeyword(f"Keyword '{other.word}' already exists", field="word")
        if "category" in values:
            values["category"] = normalize_category(values["category"])
        before = keyword
        keyword = dataclasses.replace(keyword, **values)
        await uow.keywords.save(keyword)
        stale: list[int] = []
        if _as_term(before) != _as_term(keyword):  # what `kw:` stands for changed
            stale = await uow.rule_matches.invalidate(
                keyword_ids=[keyword.id], keyword_words=[keyword_key(before.word), keyword_key(keyword.word)]
            )
        await uow.commit()
    await invalidate_stats(adapters.cache)
    if stale:
        await start_rule_indexing(adapters)
    return keyword


def _as_term(keyword: Keyword) -> tuple[str, bool, bool, bool]:
    return (keyword.word, keyword.case_sensitive, keyword.whole_word, keyword.morphology)


async def remove_keyword(adapters: Adapters, keyword_id: int) -> Keyword:
    """Delete a keyword and its matches; the comments' match counts are corrected."""
    async with adapters.uow_factory() as uow:
        keyword = await _get(uow, keyword_id)
        await uow.keywords.remove(keyword_id)
        # Last: the comments it updated are locked before the rules (rule_matches.py).
        stale = await uow.rule_matches.invalidate(keyword_ids=[keyword_id], keyword_words=[keyword_key(keyword.word)])
        await uow.commit()
    await invalidate_stats(adapters.cache)  # its matches are gone
    if stale:
        await start_rule_indexing(adapters)
    return keyword


async def _get(uow: UnitOfWork, keyword_id: int) -> Keyword:
    keyword = await uow.keywords.get(keyword_id)
    if keyword is None:
        raise NotFound(f"Keyword {keyword_id} not found", field="id")
    return keyword
