"""Saved rules compiled together for their stored matches (``domain.rule_index``): which
rules a change invalidates (``dependents``), and the one matcher that decides their rows
(``compile_rules``: every rule resolved, in one ``domain.rules.RuleSet``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from domain.errors import InvalidInput
from domain.matching import Lemmatizer
from domain.rules import (
    AnyOf,
    Expr,
    KeywordTerm,
    Narrowing,
    RuleSet,
    StaticCatalog,
    WordForms,
    narrowing_of,
    parse,
    references,
    resolve,
)

# A rebuild of more rules reads every comment of a range: the database would test each row
# against every rule's substrings (200 rules: ~400 LIKEs a row, 85 s at 250,000 comments), where
# the ``RuleSet`` finds all the rules' terms in one pass and looks only at rules one occurs in.
MAX_NARROWED_RULES = 8


@dataclass(frozen=True)
class StoredRule:
    """A saved rule as the index sees it."""

    id: int
    name_key: str
    query: str
    generation: int = 0


@dataclass(frozen=True)
class CompiledRules:
    """Saved rules resolved and matched together: ``rule_ids[i]`` is ``rule_set``'s query ``i``.
    Rules whose query no longer resolves (a keyword they name was removed) are left out:
    ``broken``. Rules in ``dropped`` (changed since) are matched no more."""

    rule_ids: tuple[int, ...]
    generations: tuple[int, ...]
    rule_set: RuleSet | None
    narrowing: Narrowing  # implied by a match of any of them (None: any text may match)
    broken: tuple[int, ...] = ()
    dropped: frozenset[int] = frozenset()

    @property
    def live(self) -> list[tuple[int, int]]:
        """(rule id, generation) of the rules matched."""
        return [(i, g) for i, g in zip(self.rule_ids, self.generations, strict=True) if i not in self.dropped]

    def matching(self, comments: Iterable[tuple[int, str]]) -> list[tuple[int, int]]:
        """(rule id, comment id) of every rule each comment's text matches."""
        if self.rule_set is None:
            return []
        ids, dropped = self.rule_ids, self.dropped
        return [
            (ids[i], comment_id)
            for comment_id, text in comments
            for i in self.rule_set.matching(text)
            if ids[i] not in dropped
        ]


NO_RULES = CompiledRules((), (), None, None)


def needed_keywords(rules: Iterable[StoredRule]) -> tuple[set[int], set[str]]:
    """The keyword ids and words (``keyword_key``) the rules name."""
    ids: set[int] = set()
    words: set[str] = set()
    for rule in rules:
        try:
            refs = references(parse(rule.query))
        except InvalidInput:
            continue
        ids |= refs.keyword_ids
        words |= refs.keyword_words
    return ids, words


def compile_rules(
    rules: Sequence[StoredRule], every_rule: Sequence[StoredRule], keywords: Sequence[KeywordTerm],
    lemmatizer: Lemmatizer, stems: WordForms | None = None,
) -> CompiledRules:
    """``rules`` resolved against ``every_rule`` (what ``rule:`` names) and ``keywords``, in one
    ``RuleSet``. Resolution never waits: everything it looks up is given."""
    catalog = StaticCatalog(keywords, {r.name_key: r.query for r in every_rule})
    exprs: list[Expr] = []
    ids: list[int] = []
    generations: list[int] = []
    broken: list[int] = []
    for rule in rules:
        coroutine = resolve(parse(rule.query), catalog) if _parses(rule.query) else None
        if coroutine is None:
            broken.append(rule.id)
            continue
        try:
            coroutine.send(None)
        except StopIteration as done:
            exprs.append(done.value)
            ids.append(rule.id)
            generations.append(rule.generation)
            continue
        except InvalidInput:
            broken.append(rule.id)
            continue
        coroutine.close()
        raise RuntimeError("a static catalog never waits")
    if not exprs:
        return CompiledRules((), (), None, None, tuple(broken))
    narrowing: Narrowing = None
    if len(exprs) <= MAX_NARROWED_RULES:
        narrowings = [narrowing_of(e, stems) for e in exprs]
        narrowing = None if any(n is None for n in narrowings) else AnyOf(tuple(narrowings))
    return CompiledRules(tuple(ids), tuple(generations), RuleSet(exprs, lemmatizer), narrowing, tuple(broken))


def _parses(query: str) -> bool:
    try:
        parse(query)
    except InvalidInput:
        return False
    return True


def dependents(
    rules: Sequence[StoredRule], *, rule_ids: Iterable[int] = (), keyword_ids: Iterable[int] = (),
    keyword_words: Iterable[str] = (), rule_names: Iterable[str] = (),
) -> set[int]:
    """Ids of the saved rules whose matches change with these: the rules ``rule_ids``, the rules
    naming these keywords (by id or ``keyword_key``) or these rules (``rule_key``), and the rules
    naming any of those, and so on."""
    ids, words, names = set(keyword_ids), set(keyword_words), set(rule_names)
    refs: dict[int, Any] = {}
    for rule in rules:
        try:
            refs[rule.id] = references(parse(rule.query))
        except InvalidInput:
            continue
    by_id: Mapping[int, StoredRule] = {r.id: r for r in rules}
    found = {i for i in rule_ids if i in by_id}
    for rule_id, ref in refs.items():
        if ref.keyword_ids & ids or ref.keyword_words & words or ref.rule_names & names:
            found.add(rule_id)
    # Rules that name a rule found, until nothing is added.
    while True:
        named = {by_id[i].name_key for i in found}
        more = {rule_id for rule_id, ref in refs.items() if rule_id not in found and ref.rule_names & named}
        if not more:
            return found
        found |= more


def still_current(compiled: CompiledRules, current: Mapping[int, int]) -> CompiledRules:
    """``compiled`` with the rules whose generation moved (or which are gone) dropped."""
    moved = {i for i, g in compiled.live if current.get(i) != g}
    return replace(compiled, dropped=compiled.dropped | moved) if moved else compiled


