"""Russian lemmas from pymorphy3: the ``Lemmatizer`` the keyword matcher needs."""

from __future__ import annotations

import functools
import os
import re

import pymorphy3

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


@functools.cache
def get_analyzer() -> pymorphy3.MorphAnalyzer:
    """The process-wide pymorphy3 analyzer: loading its dictionaries takes time and ~15 MB."""
    return pymorphy3.MorphAnalyzer(lang="ru")


class PymorphyLemmatizer:
    """Normal forms of every pymorphy3 parse of a word, "ё" written as "е".

    Every parse counts, not only the likeliest one: "дорогой" is a form of both "дорога" and
    "дорогой", and the matcher must not guess which one a comment meant.
    """

    def __init__(self, analyzer: pymorphy3.MorphAnalyzer | None = None, cache_size: int = 200_000):
        self._analyzer = analyzer or get_analyzer()
        # Comment words follow Zipf's law: a modest cache answers almost every lookup.
        self._cached_lemmas = functools.lru_cache(maxsize=cache_size)(self._parse)
        self._cached_stems = functools.lru_cache(maxsize=10_000)(self._stems)

    def lemmas(self, token: str) -> frozenset[str]:
        return self._cached_lemmas(token)

    def _parse(self, token: str) -> frozenset[str]:
        if not _CYRILLIC.search(token):
            return frozenset((token,))
        return frozenset(
            parse.normal_form.replace("ё", "е") for parse in self._analyzer.parse(token)
        )


    def stems(self, word: str) -> tuple[str, ...]:
        """Prefixes such that every form of every word ``word`` is a form of starts with one of
        them (lowercase, "ё" as "е"): "кошка" -> ("кош",) (кошек), "красный" -> ("крас",
        "покраснее"), "идти" -> ("ид", "ш") (шёл). Any text holding a form of ``word`` contains
        one of them: what the rule language's database narrowing looks for. Forms are grouped by
        their first two letters, each group giving its longest common prefix."""
        return self._cached_stems(word)

    def _stems(self, word: str) -> tuple[str, ...]:
        if not _CYRILLIC.search(word):
            return (word,)
        forms = {word}
        lemmas = self.lemmas(word)
        for parse in self._analyzer.parse(word):
            if parse.normal_form.replace("ё", "е") in lemmas:
                forms.update(f.word.replace("ё", "е") for f in parse.lexeme)
        groups: dict[str, list[str]] = {}
        for form in sorted(forms):
            groups.setdefault(form[:2], []).append(form)
        # Letters, not paths: the common prefix of strings is what is meant.
        return tuple(os.path.commonprefix(group) for group in groups.values())  # noqa: RUF071


@functools.cache
def get_lemmatizer() -> PymorphyLemmatizer:
    """The process-wide lemmatizer (and its cache)."""
    return PymorphyLemmatizer()
