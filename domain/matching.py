"""Keyword matching over comment text, every Russian word form included.

A ``KeywordMatcher`` is built once from the active keywords and then matches comment after
comment. Two ways of matching live side by side:

- **morphology** (the default for Cyrillic keywords): the text is split into words, each word
  is reduced to its dictionary forms (lemmas) and compared with the keyword's lemmas, so
  "кошка" finds "кошками" but not "окошко" (whose lemma is "окошко");
- **substring** (morphology off, or a keyword with no Cyrillic letter, or with punctuation other
  than spaces and hyphens): plain Aho–Corasick search, optionally bounded by non-word characters.

All keywords are matched in one pass over a comment: words are looked up in an index
lemma -> keywords, substrings go through one automaton. Text is compared with "ё" read as "е".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import ahocorasick

MAX_KEYWORD_LENGTH = 200
SNIPPET_CONTEXT = 60  # characters of context on each side of a match

# A word is a run of letters, digits or "_" (Python's \w); a hyphen separates words, so
# "кошка-мышка" holds "кошка" and a hyphenated keyword ("кто-то") matches as a short phrase.
_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
# Keywords that morphology can handle: words separated by spaces or hyphens only.
_WORDS_AND_SEPARATORS = re.compile(r"\w+(?:[\s\-]+\w+)*")
_SPACE = re.compile(r"\s")


class Lemmatizer(Protocol):
    def lemmas(self, token: str) -> frozenset[str]:
        """Normal forms (lowercase, "ё" written as "е") of every parse of a lowercase token."""
        ...


@dataclass(frozen=True)
class KeywordRule:
    id: int
    word: str
    case_sensitive: bool = False
    whole_word: bool = True
    morphology: bool = True


@dataclass(frozen=True)
class MatchHit:
    keyword_id: int
    matched_text: str  # as written in the text
    start: int  # character offsets into the original text, end exclusive
    end: int
    snippet: str


def normalize_keyword(word: str) -> str:
    """The keyword as stored: no outer whitespace, inner whitespace collapsed to one space."""
    return " ".join(word.split())


def keyword_key(word: str) -> str:
    """De-duplication key: "Кошка", " кошка " and "КОШКА" are one keyword, so are "ёлка", "елка"."""
    return normalize_keyword(word).casefold().replace("ё", "е")


def validate_keyword(word: str) -> str | None:
    """Why ``word`` cannot be a keyword, or ``None`` when it can."""
    word = normalize_keyword(word)
    if not word:
        return "Keyword is empty"
    if len(word) > MAX_KEYWORD_LENGTH:
        return f"Keyword is longer than {MAX_KEYWORD_LENGTH} characters"
    if not _LETTER_OR_DIGIT.search(word):
        return "Keyword must contain a letter or a digit"
    return None


def make_snippet(text: str, start: int, end: int, context: int = SNIPPET_CONTEXT) -> str:
    """About ``context`` characters each side of ``text[start:end]``, cut between words.

    "…" marks a cut; runs of whitespace (line breaks included) become one space.
    """
    left = max(0, start - context)
    if left > 0 and not text[left - 1].isspace():
        # Drop the partial word at the cut; a match inside a long word has no boundary to cut at.
        space = _SPACE.search(text, left, start)
        if space:
            left = space.end()
    right = min(len(text), end + context)
    if right < len(text) and not text[right].isspace():
        # Cut at the last space or line break (a tab is rare enough to be cut across).
        cut = max(text.rfind(" ", end, right), text.rfind("\n", end, right))
        if cut >= 0:
            right = cut
    body = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + body + ("…" if right < len(text) else "")


# --- the matcher ----------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Lowercase with "ё" read as "е", keeping every character at its offset."""
    lowered = text.lower()
    if len(lowered) != len(text):
        # A few characters ("İ") lowercase to two code points; keep those as they are so
        # that offsets into the folded text are offsets into the original.
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return lowered.replace("ё", "е")


def _fold_yo(text: str) -> str:
    return text.replace("ё", "е").replace("Ё", "Е")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


# Case patterns of a word written in a case-sensitive keyword.
_CAPITALS, _CAPITALIZED, _LOWER = "capitals", "capitalized", "lower"


def _case_pattern(word: str) -> str:
    letters = [c for c in word if c.isalpha()]
    if len(letters) >= 2 and word.isupper():
        return _CAPITALS
    if letters and letters[0].isupper():
        return _CAPITALIZED
    return _LOWER


def _has_case_pattern(token: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if pattern == _CAPITALS:
        return token.isupper()
    first = next((c for c in token if c.isalpha()), "")
    return first.isupper() if pattern == _CAPITALIZED else not first.isupper()


@dataclass(frozen=True)
class _Phrase:
    keyword_id: int
    lemmas: tuple[frozenset[str], ...]  # per word
    hyphenated: tuple[bool, ...]  # per gap: the words must be joined by exactly one "-"
    case_patterns: tuple[str | None, ...]  # per word; all None when not case sensitive


# What a text word starts: the (keyword id, case pattern) of the words it is, and the phrases it
# may begin; () when nothing.
_Starts = tuple[tuple[tuple[int, str | None], ...], tuple[_Phrase, ...]] | tuple[()]


class KeywordMatcher:
    """Finds every keyword of a fixed set in a text.

    Morphology: a text word matches a keyword word when one of its lemmas equals one of the
    keyword word's lemmas. A single keyword word written in a dictionary form stands for that
    dictionary word only: "дорога" finds "дорогой" (a form of "дорога") but not "дорогие"
    (only a form of the adjective "дорогой"). A keyword word in another form ("кошками") or a
    word of a phrase (written in agreement: "красная площадь") keeps all its lemmas.

    A phrase matches its words in order, as adjacent words of the text: anything but letters
    and digits may stand between them; words a keyword joins with "-" must be joined by "-".

    ``whole_word`` off with morphology: the keyword is found as a word form and also inside
    longer words, as a substring.

    ``case_sensitive`` with morphology: each text word must start with a letter of the same
    case as the keyword word, and a keyword word written in capitals (two or more letters,
    "МЧС") matches only words written in capitals. So "Москва" finds "Москвы" and "МОСКВА" but
    not "москва". Without morphology case sensitivity is exact (except "ё" = "е").
    """

    def __init__(
        self, rules: Iterable[KeywordRule], lemmatizer: Lemmatizer, cache_size: int = 500_000
    ) -> None:
        self._lemmatizer = lemmatizer
        self._cache_size = cache_size
        # Caches per normalized text word: its lemmas, and what it starts: () for most words,
        # else (single-word hits, phrases starting here).
        self._word_lemmas: dict[str, frozenset[str]] = {}
        self._word_starts: dict[str, _Starts] = {}
        self._word_index: dict[str, list[tuple[int, str | None]]] = {}
        self._phrase_index: dict[str, list[_Phrase]] = {}
        substrings_ci: dict[str, list[tuple[int, int, bool]]] = {}
        substrings_cs: dict[str, list[tuple[int, int, bool]]] = {}
        for rule in rules:
            word = normalize_keyword(rule.word)
            if validate_keyword(word) is not None:
                continue
            by_morphology = (
                rule.morphology
                and _CYRILLIC.search(word) is not None
                and _WORDS_AND_SEPARATORS.fullmatch(word) is not None
            )
            if by_morphology:
                self._add_morphology(rule, word)
            if not by_morphology or not rule.whole_word:
                pattern = _fold_yo(word) if rule.case_sensitive else _fold(word)
                table = substrings_cs if rule.case_sensitive else substrings_ci
                table.setdefault(pattern, []).append((rule.id, len(pattern), rule.whole_word))
        self._automaton_ci = _automaton(substrings_ci)
        self._automaton_cs = _automaton(substrings_cs)

    def _add_morphology(self, rule: KeywordRule, word: str) -> None:
        spans = list(_WORD.finditer(word))
        parts = [m.group() for m in spans]
        gaps = [word[a.end() : b.start()] for a, b in itertools.pairwise(spans)]
        patterns = tuple(_case_pattern(p) if rule.case_sensitive else None for p in parts)
        if len(parts) == 1:
            key = _fold(parts[0])
            lemmas = self._lemmas(key)
            if key in lemmas:
                lemmas = frozenset((key,))
            for lemma in lemmas:
                self._word_index.setdefault(lemma, []).append((rule.id, patterns[0]))
            return
        phrase = _Phrase(
            keyword_id=rule.id,
            lemmas=tuple(self._lemmas(_fold(p)) for p in parts),
            hyphenated=tuple(gap == "-" for gap in gaps),
            case_patterns=patterns,
        )
        for lemma in phrase.lemmas[0]:
            self._phrase_index.setdefault(lemma, []).append(phrase)

    def _lemmas(self, key: str) -> frozenset[str]:
        return self._lemmatizer.lemmas(key) or frozenset((key,))

    def _learn(self, key: str) -> _Starts:
        """Look a text word up in the index and cache the answer, as comment words repeat."""
        if len(self._word_starts) >= self._cache_size:
            # A crude bound; the vocabulary of real comments refills the cache fast.
            self._word_starts.clear()
            self._word_lemmas.clear()
        lemmas = self._word_lemmas[key] = self._lemmas(key)
        hits: list[tuple[int, str | None]] = []
        phrases: list[_Phrase] = []
        for lemma in lemmas:
            hits.extend(self._word_index.get(lemma, ()))
            phrases.extend(self._phrase_index.get(lemma, ()))
        starts: _Starts = ()
        if hits or phrases:
            starts = (tuple(dict.fromkeys(hits)), tuple(dict.fromkeys(phrases)))
        self._word_starts[key] = starts
        return starts

    def match(self, text: str) -> list[MatchHit]:
        """Every keyword occurrence in ``text``, ordered by position."""
        return [
            MatchHit(kid, text[start:end], start, end, make_snippet(text, start, end))
            for kid, start, end in self.spans(text)
        ]

    def spans(self, text: str) -> list[tuple[int, int, int]]:
        """(keyword id, start, end) of every keyword occurrence in ``text``, by position: what
        ``match`` finds, without the snippets (the rule language's matcher needs only where)."""
        if not text:
            return []
        folded = _fold(text)
        found: dict[tuple[int, int], int] = {}  # (keyword id, start) -> end
        if self._word_index or self._phrase_index:
            self._match_words(text, folded, found)
        if self._automaton_ci is not None:
            _match_substrings(self._automaton_ci, folded, folded, found)
        if self._automaton_cs is not None:
            _match_substrings(self._automaton_cs, _fold_yo(text), folded, found)
        ordered = sorted((start, end, kid) for (kid, start), end in found.items())
        return [(kid, start, end) for start, end, kid in ordered]

    def _match_words(self, text: str, folded: str, found: dict[tuple[int, int], int]) -> None:
        word_starts = self._word_starts
        for m in _WORD.finditer(folded):
            starts = word_starts.get(m.group())
            if starts is None:
                starts = self._learn(m.group())
            if not starts:
                continue
            hits, phrases = starts
            start, end = m.span()
            for kid, pattern in hits:
                if pattern is None or _has_case_pattern(text[start:end], pattern):
                    _add(found, kid, start, end)
            for phrase in phrases:
                phrase_end = self._phrase_end(phrase, m, text, folded)
                if phrase_end is not None:
                    _add(found, phrase.keyword_id, start, phrase_end)

    def _phrase_end(self, phrase: _Phrase, first: re.Match[str], text: str, folded: str) -> int | None:
        """Where ``phrase`` ends if it starts at the word ``first``, else ``None``."""
        if not _has_case_pattern(text[first.start() : first.end()], phrase.case_patterns[0]):
            return None
        pos = first.end()
        for lemmas, hyphenated, pattern in zip(
            phrase.lemmas[1:], phrase.hyphenated, phrase.case_patterns[1:]
        ):
            m = _WORD.search(folded, pos)
            if m is None:
                return None
            if hyphenated and folded[pos : m.start()] != "-":
                return None
            key = m.group()
            if key not in self._word_lemmas:
                self._learn(key)
            if lemmas.isdisjoint(self._word_lemmas[key]):
                return None
            if not _has_case_pattern(text[m.start() : m.end()], pattern):
                return None
            pos = m.end()
        return pos


def _automaton(patterns: dict[str, list[tuple[int, int, bool]]]) -> ahocorasick.Automaton | None:
    if not patterns:
        return None
    automaton = ahocorasick.Automaton()
    for pattern, entries in patterns.items():
        automaton.add_word(pattern, tuple(entries))
    automaton.make_automaton()
    return automaton


def _match_substrings(
    automaton: ahocorasick.Automaton, haystack: str, folded: str, found: dict[tuple[int, int], int]
) -> None:
    for last, entries in automaton.iter(haystack):
        end = last + 1
        for kid, length, whole_word in entries:
            start = end - length
            if whole_word and (
                (start > 0 and _is_word_char(folded[start - 1]))
                or (end < len(folded) and _is_word_char(folded[end]))
            ):
                continue
            _add(found, kid, start, end)


def _add(found: dict[tuple[int, int], int], keyword_id: int, start: int, end: int) -> None:
    # One keyword at one position is one hit; keep the longest reading of it.
    if found.get((keyword_id, start), -1) < end:
        found[(keyword_id, start)] = end
