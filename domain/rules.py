"""The rule language: boolean queries over morphology-aware terms, and what they match.

One semantic, here: ``parse`` reads a query (with ``lark``), ``resolve`` replaces references to
keywords and saved rules by what they stand for, ``compile_query`` makes a ``QueryMatcher`` that
decides whether a comment's text matches, and with which words. The databases only narrow the
candidates (``QueryMatcher.narrowing``: substrings every matching text contains); the matcher
decides, on the live feed, on the Review page, in counts and exports alike.

Syntax (the README's "Rule language" section says the same with examples):

- ``кошка``: a term. It matches as a keyword does (``domain.matching``): every Russian word
  form (``кошками``, not ``окошко``), case-insensitive, whole words, ``ё`` read as ``е``.
  A hyphenated word (``кто-то``) is its parts joined by one hyphen.
- ``"красная площадь"``: the words next to each other, in this order, each in any form.
- ``"ремонт дороги"~3`` and ``ремонт NEAR/3 дороги``: both words, at most 3 other words between
  them, in any order. A phrase of more words: all of them within a stretch holding at most 3
  other words. ``a NEAR/2 b NEAR/2 c`` is ``(a NEAR/2 b) AND (b NEAR/2 c)``.
- ``кош*``: any word starting with ``кош`` (no morphology: a prefix of the written word).
- Switches before a term, combinable: ``case:`` (letter case counts, as a case-sensitive
  keyword: ``case:МЧС``), ``part:`` (also inside longer words, as a keyword with whole words
  off), ``exact:`` (this word form only, no morphology).
- ``AND``, ``OR``, ``NOT`` (capitals only: ``and`` is a word), ``-term`` (= ``NOT term``),
  parentheses. Terms side by side are joined by AND: ``кошка корм`` = ``кошка AND корм``.
  ``NOT`` binds tighter than ``AND``, which binds tighter than ``OR``:
  ``(кошка OR кот) AND корм NOT продам`` = ``(кошка OR кот) AND корм AND (NOT продам)``.
- ``kw:12`` or ``kw:кошка`` / ``kw:"ремонт дорог"``: a stored keyword (by the number in its id,
  or by its word), matched with its own switches.
- ``rule:имя`` / ``rule:"имя с пробелами"``: a saved rule's query, as if written in parentheses.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import ahocorasick
from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from domain.errors import InvalidInput
from domain.matching import (
    _CYRILLIC,
    _WORDS_AND_SEPARATORS,
    MAX_KEYWORD_LENGTH,
    KeywordMatcher,
    KeywordRule,
    Lemmatizer,
    keyword_key,
    normalize_keyword,
)
from domain.text import checked_text

MAX_QUERY_LENGTH = 2000
MAX_TERMS = 200
MAX_NEAR = 100  # the largest N of NEAR/N and ~N
MAX_RULE_NAME = 100
MAX_NESTING = 10  # saved rules referring to saved rules, this deep at most

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND? not_expr)*
?not_expr: _NOT not_expr -> negation
         | MINUS not_expr -> negation
         | near_expr
?near_expr: primary (NEAR primary)*
?primary: term
        | "(" or_expr ")"
term: MODIFIER* (WORD | INT | PREFIX | PHRASE SLOP?)
    | KWREF (INT | WORD | PHRASE)
    | RULEREF (WORD | PHRASE)

_OR: "OR"
_AND: "AND"
_NOT: "NOT"
MINUS: "-"
NEAR.3: /NEAR\/[0-9]+/
MODIFIER.3: /(case|part|exact):/
KWREF.3: "kw:"
RULEREF.3: "rule:"
INT.2: /[0-9]+(?![\w*])/
PREFIX.2: /\w+(?:-\w+)*\*/
WORD: /\w+(?:['’-]\w+)*/
PHRASE: /"[^"]*"/
SLOP: /~[0-9]+/

%ignore /\s+/
"""

_TERMINAL_NAMES = {
    "WORD": "a word",
    "PREFIX": "a prefix (кош*)",
    "PHRASE": 'a quoted phrase ("…")',
    "INT": "a keyword number",
    "MODIFIER": "case:, part: or exact:",
    "KWREF": "kw:",
    "RULEREF": "rule:",
    "NEAR": "NEAR/N",
    "SLOP": "~N",
    "MINUS": "-",
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "LPAR": "(",
    "RPAR": ")",
    "$END": "the end of the query",
}


class QuerySyntaxError(InvalidInput):
    """A query that does not parse or names what does not exist: where (1-based line and column)
    and what would have been understood there."""

    def __init__(self, message: str, *, line: int, column: int, expected: Sequence[str] = ()) -> None:
        where = f"line {line}, column {column}"
        full = f"{message} at {where}"
        if expected:
            full += "; expected " + ", ".join(expected)
        super().__init__(full, field="query")
        self.line = line
        self.column = column
        self.expected = tuple(expected)
        self.reason = message


# --- the syntax tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """Words to find: one word, a phrase (adjacent words) or, with ``slop``, words near each other."""

    words: tuple[str, ...]
    joins: tuple[str, ...] = ()  # per gap: " " or "-" (hyphenated words)
    prefix: bool = False
    case_sensitive: bool = False
    whole_word: bool = True
    morphology: bool = True
    slop: int | None = None
    keyword_id: int | None = None  # a stored keyword this term stands for
    # Where the term is written: for messages; two terms written alike are one term.
    line: int = field(default=1, compare=False)
    column: int = field(default=1, compare=False)

    def __hash__(self) -> int:
        # Terms are dictionary keys on the matching path: their hash is computed once.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.words, self.joins, self.prefix, self.case_sensitive, self.whole_word,
                           self.morphology, self.slop, self.keyword_id))
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def text(self) -> str:
        written = self.words[0] + "".join(j + w for j, w in zip(self.joins, self.words[1:]))
        return written + ("*" if self.prefix else "")


@dataclass(frozen=True)
class KeywordRef:
    ref: int | str  # row id, or the keyword's word
    line: int = field(default=1, compare=False)
    column: int = field(default=1, compare=False)


@dataclass(frozen=True)
class RuleRef:
    name: str
    line: int = field(default=1, compare=False)
    column: int = field(default=1, compare=False)


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class Near:
    """Two terms with at most ``distance`` words between them (references before ``resolve``)."""

    left: Term | KeywordRef
    right: Term | KeywordRef
    distance: int


Expr = Term | KeywordRef | RuleRef | And | Or | Not | Near


def _position(token: Token) -> tuple[int, int]:
    return (token.line or 1, token.column or 1)


class _Build(Transformer[Token, Expr]):
    def term(self, items: list[Token]) -> Expr:
        first = items[0]
        line, column = _position(first)
        if first.type == "KWREF":
            value = items[1]
            if value.type == "INT":
                return KeywordRef(int(value), line, column)
            word = _unquote(value) if value.type == "PHRASE" else str(value)
            return KeywordRef(_checked_words(word, value), line, column)
        if first.type == "RULEREF":
            value = items[1]
            name = " ".join((_unquote(value) if value.type == "PHRASE" else str(value)).split())
            if not name:
                raise _error("A rule name is empty", value)
            return RuleRef(name, line, column)
        switches = {str(t)[:-1] for t in items if t.type == "MODIFIER"}
        rest = [t for t in items if t.type != "MODIFIER"]
        body, slop = rest[0], None
        if len(rest) > 1:
            slop = int(str(rest[1])[1:])
            if slop > MAX_NEAR:
                raise _error(f"~N allows at most {MAX_NEAR}", rest[1])
        prefix = body.type == "PREFIX"
        text = _unquote(body) if body.type == "PHRASE" else str(body).rstrip("*")
        words, joins = _split(_checked_words(text, body))
        if slop is not None and len(words) < 2:
            raise _error("~N needs a phrase of two or more words", rest[1])
        return Term(
            words=words, joins=joins, prefix=prefix, case_sensitive="case" in switches,
            whole_word="part" not in switches, morphology="exact" not in switches and not prefix,
            slop=slop, line=line, column=column,
        )

    def negation(self, items: list[Expr | Token]) -> Expr:
        item = items[-1]
        assert not isinstance(item, Token)
        return Not(item)

    def and_expr(self, items: list[Expr]) -> Expr:
        return And(tuple(items))

    def or_expr(self, items: list[Expr]) -> Expr:
        return Or(tuple(items))

    def near_expr(self, items: list[Expr | Token]) -> Expr:
        operands = items[0::2]
        operators = items[1::2]
        pairs: list[Expr] = []
        for (left, right), op in zip(itertools.pairwise(operands), operators):
            assert isinstance(op, Token)
            for side in (left, right):
                if not isinstance(side, Term | KeywordRef):
                    raise _error("NEAR/N joins words, phrases or kw: references, not groups", op)
            distance = int(str(op).split("/", 1)[1])
            if distance > MAX_NEAR:
                raise _error(f"NEAR/N allows at most {MAX_NEAR}", op)
            pairs.append(Near(left, right, distance))  # type: ignore[arg-type]
        return pairs[0] if len(pairs) == 1 else And(tuple(pairs))


def _unquote(token: Token) -> str:
    return str(token)[1:-1]


def _checked_words(text: str, token: Token) -> str:
    text = normalize_keyword(text)
    if not re.search(r"[^\W_]", text):
        raise _error("A quoted phrase holds no word", token)
    return text


_SPLIT = re.compile(r"\w+")


def _split(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    spans = list(_SPLIT.finditer(text))
    words = tuple(m.group() for m in spans)
    joins = tuple("-" if text[a.end() : b.start()] == "-" else " " for a, b in itertools.pairwise(spans))
    return words, joins


class _Located(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def _error(message: str, token: Token) -> _Located:
    line, column = _position(token)
    return _Located(message, line, column)


@functools.cache
def _parser() -> Lark:
    # The basic lexer: AND, OR, NOT are operators wherever they stand (a contextual lexer would
    # read "OR" in "a AND OR b" as a word, and the mistake would pass unnoticed).
    return Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False, propagate_positions=False)


def _expected(names: Iterable[str]) -> list[str]:
    return sorted({_TERMINAL_NAMES.get(n, n) for n in names})


def _describe(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "The query ends too early"
    return f"Unexpected `{token}`"


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """The syntax tree of a query; ``QuerySyntaxError`` (a BAD_USER_INPUT) says where it is wrong."""
    checked_text(text, field="query")
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"The query is longer than {MAX_QUERY_LENGTH} characters", line=1, column=1)
    if not text.strip():
        raise QuerySyntaxError("The query is empty", line=1, column=1, expected=["a word"])
    try:
        tree = _parser().parse(text)
        built = _Build().transform(tree)
    except UnexpectedToken as e:
        at_end = e.token is None or e.token.type == "$END" or e.line < 1
        raise QuerySyntaxError(
            _describe(e.token), line=_last_line(text) if at_end else e.line,
            column=_end_column(text) if at_end else e.column, expected=_expected(e.expected),
        ) from None
    except UnexpectedCharacters as e:
        raise QuerySyntaxError(
            f"Unexpected character `{text[e.pos_in_stream]}`"
            if e.pos_in_stream is not None
            else "Unexpected character",
            line=e.line, column=e.column, expected=_expected(e.allowed or ()),
        ) from None
    except UnexpectedEOF as e:
        raise QuerySyntaxError(
            "The query ends too early", line=_last_line(text), column=_end_column(text), expected=_expected(e.expected)
        ) from None
    except UnexpectedInput as e:  # any other parse error lark may raise
        raise QuerySyntaxError("The query cannot be read", line=e.line, column=e.column) from None
    except VisitError as e:
        located = e.orig_exc
        if isinstance(located, _Located):
            raise QuerySyntaxError(located.message, line=located.line, column=located.column) from None
        raise
    expr = _finish(built)
    if _count_terms(expr) > MAX_TERMS:
        raise QuerySyntaxError(f"The query has more than {MAX_TERMS} terms", line=1, column=1)
    return expr


def _last_line(text: str) -> int:
    return text.count("\n") + 1


def _end_column(text: str) -> int:
    return len(text) - (text.rfind("\n") + 1) + 1


def _finish(expr: Expr) -> Expr:
    """Flattens nested ANDs and ORs."""
    if isinstance(expr, And | Or):
        flat: list[Expr] = []
        for item in expr.items:
            done = _finish(item)
            flat.extend(done.items if isinstance(done, And | Or) and type(done) is type(expr) else (done,))
        return type(expr)(tuple(flat))
    if isinstance(expr, Not):
        return Not(_finish(expr.item))
    return expr


def _count_terms(expr: object) -> int:
    if isinstance(expr, And | Or):
        return sum(_count_terms(i) for i in expr.items)
    if isinstance(expr, Not):
        return _count_terms(expr.item)
    if isinstance(expr, Near | Near):
        return 2
    return 1


# --- references -----------------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    keyword_ids: frozenset[int] = frozenset()
    keyword_words: frozenset[str] = frozenset()  # keyword_key of each word
    rule_names: frozenset[str] = frozenset()  # rule_key of each name


def rule_key(name: str) -> str:
    """How rule names compare: "Кошки", " кошки " and "КОШКИ" are one name."""
    return " ".join(name.split()).casefold().replace("ё", "е")


def references(expr: object) -> References:
    """The keywords and saved rules ``expr`` names."""
    ids: set[int] = set()
    words: set[str] = set()
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, KeywordRef):
            if isinstance(node.ref, int):
                ids.add(node.ref)
            else:
                words.add(keyword_key(node.ref))
        elif isinstance(node, RuleRef):
            names.add(rule_key(node.name))
        elif isinstance(node, And | Or):
            for item in node.items:
                walk(item)
        elif isinstance(node, Not):
            walk(node.item)
        elif isinstance(node, Near):
            walk(node.left)
            walk(node.right)

    walk(expr)
    return References(frozenset(ids), frozenset(words), frozenset(names))


@dataclass(frozen=True)
class KeywordTerm:
    """What a ``kw:`` reference stands for: a stored keyword's word and switches."""

    id: int
    word: str
    case_sensitive: bool = False
    whole_word: bool = True
    morphology: bool = True


class RuleCatalog(Protocol):
    """Where references are looked up (the database; a dict in unit tests)."""

    async def keywords_for(self, ids: Iterable[int], words: Iterable[str]) -> list[KeywordTerm]:
        """Stored keywords with these row ids or these words (``keyword_key``)."""
        ...

    async def rule_queries(self, names: Iterable[str]) -> dict[str, str]:
        """``rule_key`` of a saved rule's name -> its query, for the names that exist."""
        ...


async def resolve(expr: Expr, catalog: RuleCatalog, *, depth: int = 0, seen: frozenset[str] = frozenset()) -> Expr:
    """``expr`` with every reference replaced by what it stands for: a keyword by a term with
    the keyword's switches, a saved rule by its (resolved) query. Unknown names and rules that
    refer to themselves are ``QuerySyntaxError``s at the reference."""
    refs = references(expr)
    if not (refs.keyword_ids or refs.keyword_words or refs.rule_names):
        return expr
    found = await catalog.keywords_for(refs.keyword_ids, refs.keyword_words)
    by_id = {k.id: k for k in found}
    by_word = {keyword_key(k.word): k for k in found}
    rules: dict[str, Expr] = {}
    if refs.rule_names:
        if depth >= MAX_NESTING:
            raise QuerySyntaxError(f"Saved rules refer to each other more than {MAX_NESTING} deep", line=1, column=1)
        queries = await catalog.rule_queries(refs.rule_names)
        for key, query in queries.items():
            if key in seen:
                continue  # reported at the reference, below
            try:
                rules[key] = await resolve(parse(query), catalog, depth=depth + 1, seen=seen | {key})
            except QuerySyntaxError as e:
                rules[key] = _Broken(e.reason)  # type: ignore[assignment]

    def keyword_term(ref: KeywordRef) -> Term:
        keyword = by_id.get(ref.ref) if isinstance(ref.ref, int) else by_word.get(keyword_key(ref.ref))
        if keyword is None:
            what = f"kw:{ref.ref}" if isinstance(ref.ref, int) else f'kw:"{ref.ref}"'
            raise QuerySyntaxError(f"No keyword {what}", line=ref.line, column=ref.column)
        words, joins = _split(normalize_keyword(keyword.word))
        return Term(
            words=words, joins=joins, case_sensitive=keyword.case_sensitive, whole_word=keyword.whole_word,
            morphology=keyword.morphology, keyword_id=keyword.id, line=ref.line, column=ref.column,
        )

    def swap(node: object) -> Expr:
        if isinstance(node, KeywordRef):
            return keyword_term(node)
        if isinstance(node, RuleRef):
            key = rule_key(node.name)
            if key in seen:
                raise QuerySyntaxError(f'Rule "{node.name}" refers to itself', line=node.line, column=node.column)
            rule = rules.get(key)
            if rule is None:
                raise QuerySyntaxError(f'No saved rule "{node.name}"', line=node.line, column=node.column)
            if isinstance(rule, _Broken):
                raise QuerySyntaxError(
                    f'Saved rule "{node.name}" is broken: {rule.reason}', line=node.line, column=node.column
                )
            return rule
        if isinstance(node, And | Or):
            return type(node)(tuple(swap(i) for i in node.items))
        if isinstance(node, Not):
            return Not(swap(node.item))
        if isinstance(node, Near):
            return Near(swap(node.left), swap(node.right), node.distance)  # type: ignore[arg-type]
        assert isinstance(node, Term)
        return node

    return swap(expr)


@dataclass(frozen=True)
class _Broken:
    reason: str


async def resolve_text(text: str, catalog: RuleCatalog) -> Expr:
    return await resolve(parse(text), catalog)


# --- matching -------------------------------------------------------------------------------


class WordForms(Protocol):
    def stems(self, word: str) -> tuple[str, ...]:
        """Prefixes (lowercase, ``ё`` as ``е``) such that every form of every lemma of ``word``
        starts with one of them: any text holding a form of ``word`` contains one."""
        ...


@dataclass(frozen=True)
class Highlight:
    start: int  # offsets into the text, end exclusive
    end: int
    term: str  # the term as written in the query
    keyword_id: int | None = None


# Narrowing: conditions a database can check with its text index; each is implied by a match.
@dataclass(frozen=True)
class Contains:
    text: str  # folded (lowercase, ``ё`` as ``е``)


@dataclass(frozen=True)
class AllOf:
    items: tuple[Narrowing, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Narrowing, ...]


Narrowing = Contains | AllOf | AnyOf | None  # None: no narrowing (any text)

_WORD = re.compile(r"\w+")


def _fold(text: str) -> str:
    return text.lower().replace("ё", "е")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _fold_keeping(text: str) -> str:
    """``_fold`` keeping every character at its offset (as ``domain.matching`` folds)."""
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return lowered.replace("ё", "е")


class _Terms:
    """The leaves of one or many queries, found in a text in one pass: every word and phrase by
    one ``KeywordMatcher`` (morphology, case, whole words as keywords have them), prefixes by a
    look-up per distinct word (cached), near-phrases from their words' positions."""

    def __init__(self, terms: Iterable[Term], lemmatizer: Lemmatizer) -> None:
        rules: list[KeywordRule] = []
        self.ids: dict[Term, tuple[int, ...]] = {}  # keyword-matcher ids: one per word of a near-phrase
        self._by_id: dict[int, Term] = {}  # ids of plain words and phrases
        self._prefixes: dict[tuple[bool, str], list[Term]] = {}  # (case sensitive, prefix) -> terms
        self.near: list[Term] = []
        self._near_by_id: dict[int, list[Term]] = {}  # a near-phrase's word ids -> the phrase

        def add(word: str, term: Term) -> int:
            rules.append(KeywordRule(
                id=len(rules), word=word, case_sensitive=term.case_sensitive, whole_word=term.whole_word,
                morphology=term.morphology,
            ))
            return len(rules) - 1

        for term in terms:
            if term in self.ids:
                continue
            if term.prefix:
                prefix = term.text[:-1] if term.case_sensitive else _fold(term.text[:-1])
                self._prefixes.setdefault((term.case_sensitive, prefix), []).append(term)
                self.ids[term] = ()
            elif term.slop is not None:
                self.ids[term] = tuple(add(w, term) for w in term.words)
                self.near.append(term)
                for kid in self.ids[term]:
                    self._near_by_id.setdefault(kid, []).append(term)
            else:
                kid = add(term.text, term)
                self.ids[term] = (kid,)
                self._by_id[kid] = term
        # Words starting with a prefix: one Aho-Corasick automaton per case mode finds every
        # occurrence of any prefix (in C); those at the start of a word count. Over the folded
        # text for case-insensitive prefixes, over the text with "ё" as "е" for the others.
        self._prefix_automata: list[tuple[bool, ahocorasick.Automaton]] = []
        for sensitive in (False, True):
            written = {p for (cs, p) in self._prefixes if cs == sensitive}
            if written:
                automaton = ahocorasick.Automaton()
                for prefix in written:
                    automaton.add_word(prefix, (len(prefix), tuple(self._prefixes[(sensitive, prefix)])))
                automaton.make_automaton()
                self._prefix_automata.append((sensitive, automaton))
        self._matcher = KeywordMatcher(rules, lemmatizer)

    def spans(self, text: str) -> dict[Term, list[tuple[int, int]]]:
        """Where each leaf occurs in ``text`` (leaves that do not occur are absent)."""
        found: dict[Term, list[tuple[int, int]]] = {}
        by_id: dict[int, list[tuple[int, int]]] = {}
        for kid, start, end in self._matcher.spans(text):
            by_id.setdefault(kid, []).append((start, end))
        for kid, spans in by_id.items():
            term = self._by_id.get(kid)
            if term is not None:
                found[term] = spans
        if self._near_by_id:
            positions: _Positions | None = None
            for term in {t for kid in by_id for t in self._near_by_id.get(kid, ())}:
                ids = self.ids[term]
                if all(i in by_id for i in ids):
                    positions = positions or _Positions(text)
                    near = _proximity([by_id[i] for i in ids], term.slop or 0, positions)
                    if near:
                        found[term] = near
        for sensitive, automaton in self._prefix_automata:
            # Folding keeps offsets (one character for one; see ``matching._fold``).
            haystack = text.replace("ё", "е").replace("Ё", "Е") if sensitive else _fold_keeping(text)
            for last, (length, terms) in automaton.iter(haystack):
                start = last + 1 - length
                if start > 0 and _is_word_char(haystack[start - 1]):
                    continue
                word = _WORD.match(haystack, start)
                assert word is not None  # a prefix holds a letter or digit
                for term in terms:
                    found.setdefault(term, []).append(word.span())
        return found


class QueryMatcher:
    """A resolved query compiled for matching many texts."""

    def __init__(self, expr: Expr, lemmatizer: Lemmatizer, source: str = "", stems: WordForms | None = None) -> None:
        self.expr = expr
        self.source = source
        # What every matching text contains, for a database's text index to find candidates.
        self.narrowing: Narrowing = _narrowing(expr, stems)
        leaves = list(_leaves(expr))
        self._terms = _Terms((t for t, _ in leaves), lemmatizer)
        self._needs_positions = any(near for _, near in leaves)
        self._positive = _positive_terms(expr)

    def matches(self, text: str) -> bool:
        spans = self._terms.spans(text)
        return _holds(self.expr, spans, _Positions(text) if self._needs_positions else None)

    def highlights(self, text: str) -> list[Highlight] | None:
        """The words of ``text`` that make it match (outside any NOT), in text order; ``None``
        when the text does not match."""
        spans = self._terms.spans(text)
        if not _holds(self.expr, spans, _Positions(text) if self._needs_positions else None):
            return None
        out = {
            Highlight(start, end, term.text, term.keyword_id)
            for term in self._positive if term in spans for start, end in spans[term]
        }
        return sorted(out, key=lambda h: (h.start, h.end, h.term))


class RuleSet:
    """Many resolved queries matched together (alert rules, statistics, the saved rules' stored
    matches, ``bench/match.py``): one pass finds every leaf of every query; a query is evaluated
    only when one of its terms occurs in the text, or when it can hold with none (``NOT a``).

    Terms are numbered and found by number. Most terms of saved rules are one word looked up by
    its lemmas, or a word prefix, case-insensitive: those are decided per distinct text word
    (what a word hits is cached, as comment words repeat), without collecting where they occur
    (only a ``NEAR`` asks that, and then it is read off the words again). Every other term
    (phrases, ``"a b"~N``, case-sensitive, ``part:``/``exact:`` words, prefixes across a hyphen)
    goes through ``_Terms``, as one query alone does (``QueryMatcher``): the same answers."""

    def __init__(self, exprs: Sequence[Expr], lemmatizer: Lemmatizer, cache_size: int = 200_000) -> None:
        self.exprs = list(exprs)
        per_rule = [list(_leaves(e)) for e in self.exprs]
        self._lemmatizer = lemmatizer
        self._cache_size = cache_size
        self._number: dict[Term, int] = {}
        for leaves in per_rule:
            for term, _ in leaves:
                self._number.setdefault(term, len(self._number))
        # Single words by lemma and word prefixes (folded), numbered; the rest through ``_Terms``.
        self._by_lemma: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._longest_prefix = 0
        others: list[Term] = []
        for term, number in self._number.items():
            kind = _word_kind(term)
            if kind == "word":
                key = _fold_keeping(term.text)
                lemmas = lemmatizer.lemmas(key) or frozenset((key,))
                for lemma in (key,) if key in lemmas else lemmas:
                    self._by_lemma.setdefault(lemma, []).append(number)
            elif kind == "prefix":
                prefix = _fold(term.text[:-1])
                self._by_prefix.setdefault(prefix, []).append(number)
                self._longest_prefix = max(self._longest_prefix, len(prefix))
            else:
                others.append(term)
        self._others = _Terms(others, lemmatizer) if others else None
        # ``_Terms`` runs only when one of its terms may occur: when every word of it found by
        # its lemmas (``_gate``) is in the text. A gate is a number after the terms' numbers.
        self._always_others = False
        self._gates: dict[int, list[frozenset[int]]] = {}  # a gate's first word -> gates
        gate_numbers: dict[frozenset[str], int] = {}
        for term in others:
            gate: set[int] = set()
            for lemmas in _gate(term, lemmatizer):
                number = gate_numbers.setdefault(lemmas, len(self._number) + len(gate_numbers))
                for lemma in lemmas:
                    self._by_lemma.setdefault(lemma, []).append(number)
                gate.add(number)
            if not gate:
                self._always_others = True
            else:
                self._gates.setdefault(min(gate), []).append(frozenset(gate))
        # Folded text word -> (numbers of the terms it is, the queries those terms trigger,
        # the gates those numbers are the first word of).
        self._hits: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[frozenset[int], ...]]] = {}
        self._near = [any(near for _, near in leaves) for leaves in per_rule]
        self._compiled = [_numbered(e, self._number) for e in self.exprs]
        # Queries without NEAR as one Python expression each over the numbers present.
        self._tests = [None if near else _predicate(c) for near, c in zip(self._near, self._compiled, strict=True)]
        # A query is looked at when a term it needs occurs (all of them must), or without such
        # terms, when any of its terms occurs; queries that hold with no term are always looked at.
        self._required = [frozenset(self._number[t] for t in _required(e)) for e in self.exprs]
        # One term a query needs is enough to look at it (the others are checked then): the
        # one likeliest rare, a phrase or "~N" before a word, a longer word before a shorter.
        self._triggers: dict[int, list[int]] = {}
        by_number = {n: t for t, n in self._number.items()}

        def rarity(number: int) -> tuple[int, int, int]:
            term = by_number[number]
            return (-len(term.words), -len(term.text), number)

        for i, leaves in enumerate(per_rule):
            needed = self._required[i]
            triggers = [min(needed, key=rarity)] if needed else dict.fromkeys(self._number[t] for t, _ in leaves)
            for trigger in triggers:
                self._triggers.setdefault(trigger, []).append(i)
        self._always = [i for i, e in enumerate(self.exprs) if _holds(e, {}, None)]

    def _learn(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[frozenset[int], ...]]:
        """The terms a (folded) text word is and the queries they trigger, cached."""
        if len(self._hits) >= self._cache_size:
            self._hits.clear()  # a crude bound, as ``KeywordMatcher``'s
        found: list[int] = []
        if self._by_lemma:
            for lemma in self._lemmatizer.lemmas(word) or frozenset((word,)):
                found.extend(self._by_lemma.get(lemma, ()))
        if self._by_prefix:
            for end in range(1, min(len(word), self._longest_prefix) + 1):
                found.extend(self._by_prefix.get(word[:end], ()))
        if not found:
            self._hits[word] = _NO_HITS  # most words: one shared entry
            return _NO_HITS
        hits = tuple(dict.fromkeys(found))
        triggered = tuple(sorted({i for t in hits for i in self._triggers.get(t, ())}))
        gates = tuple(g for t in hits for g in self._gates.get(t, ()))
        entry = self._hits[word] = (hits, triggered, gates)
        return entry

    def matching(self, text: str) -> list[int]:
        """Indexes of the queries ``text`` matches, in order."""
        folded = _fold_keeping(text)
        words = _WORD.findall(folded)
        present: set[int] = set()
        candidates = set(self._always)
        gates: list[frozenset[int]] = []
        cache = self._hits
        for word in words:
            entry = cache.get(word)
            if entry is None:
                entry = self._learn(word)
            if entry[0]:
                present.update(entry[0])
                candidates.update(entry[1])
                if entry[2]:
                    gates.extend(entry[2])
        other_spans: dict[int, list[tuple[int, int]]] = {}
        if self._others is not None and (self._always_others or any(g <= present for g in gates)):
            number, triggers = self._number, self._triggers
            for term, spans in self._others.spans(text).items():
                other_spans[number[term]] = spans
                candidates.update(triggers.get(number[term], ()))
            present.update(other_spans)
        if not candidates:
            return []
        context: _Found | None = None
        matched = []
        required, tests = self._required, self._tests
        for i in sorted(candidates):
            if not required[i] <= present:
                continue
            test = tests[i]
            if test is not None:
                if test(present):
                    matched.append(i)
                continue
            if context is None:
                context = _Found(self, text, folded, other_spans)
            if _holds_numbered(self._compiled[i], present, context):
                matched.append(i)
        return matched


_NO_HITS: tuple[tuple[int, ...], tuple[int, ...], tuple[frozenset[int], ...]] = ((), (), ())


def _word_kind(term: Term) -> str | None:
    """``"word"``: one case-insensitive word matched by its lemmas, ``"prefix"``: a
    case-insensitive word prefix (``кош*``); ``None``: anything else. ``KeywordMatcher`` and
    ``_Terms`` find these exactly at the text words that are such a word or start so."""
    if term.case_sensitive or term.slop is not None or len(term.words) != 1:
        return None
    if term.prefix:
        prefix = _fold(term.text[:-1])
        return "prefix" if _WORD.fullmatch(prefix) else None
    word = term.text
    if (
        term.morphology and term.whole_word and len(word) <= MAX_KEYWORD_LENGTH
        and _WORD.fullmatch(word) and _CYRILLIC.search(word)
    ):
        return "word"
    return None


def _gate(term: Term, lemmatizer: Lemmatizer) -> list[frozenset[str]]:
    """Lemma sets such that ``term`` occurs in a text only if, for each, a word of the text has
    one of those lemmas: the words of a phrase or of ``"a b"~N`` that ``KeywordMatcher`` finds
    by their lemmas (whatever their case). [] when nothing is known (``part:``, ``exact:``,
    prefixes, words without Cyrillic letters)."""
    if term.prefix or not term.morphology or not term.whole_word:
        return []
    if term.slop is None:
        # One rule for the whole term: by morphology when it is Cyrillic words and separators.
        if not (_CYRILLIC.search(term.text) and _WORDS_AND_SEPARATORS.fullmatch(term.text)):
            return []
        words = [m.group() for m in _WORD.finditer(term.text)]
    else:
        # One rule per word, each by morphology when it is one Cyrillic word.
        words = [w for w in term.words if _CYRILLIC.search(w) and _WORD.fullmatch(w)]
    gate = []
    for word in words:
        key = _fold_keeping(word)
        gate.append(lemmatizer.lemmas(key) or frozenset((key,)))
    return gate


class _Found:
    """Where numbered terms occur in one text, worked out only when a ``NEAR`` asks."""

    def __init__(
        self, rules: RuleSet, text: str, folded: str, other_spans: dict[int, list[tuple[int, int]]]
    ) -> None:
        self._rules = rules
        self._folded = folded
        self._spans = dict(other_spans)
        self.positions = _Positions(text)

    def spans(self, term: int) -> list[tuple[int, int]]:
        found = self._spans.get(term)
        if found is None:
            rules = self._rules
            found = []
            for m in _WORD.finditer(self._folded):
                entry = rules._hits.get(m.group())
                if entry is None:
                    entry = rules._learn(m.group())
                if term in entry[0]:
                    found.append(m.span())
            self._spans[term] = found
        return found


def _numbered(expr: object, number: Mapping[Term, int]) -> object:
    """``expr`` with its terms as their numbers: ``("&", items)``, ``("|", items)``,
    ``("!", item)``, ``("~", left, right, distance)`` and ``int``."""
    if isinstance(expr, Term):
        return number[expr]
    if isinstance(expr, And):
        return ("&", tuple(_numbered(i, number) for i in expr.items))
    if isinstance(expr, Or):
        return ("|", tuple(_numbered(i, number) for i in expr.items))
    if isinstance(expr, Not):
        return ("!", _numbered(expr.item, number))
    if isinstance(expr, Near):
        assert isinstance(expr.left, Term) and isinstance(expr.right, Term)
        return ("~", number[expr.left], number[expr.right], expr.distance)
    raise TypeError(f"unresolved query node {expr!r}")


def _predicate(node: object) -> Callable[[set[int]], bool]:
    """A numbered query without ``NEAR`` as one function of the numbers present: Python
    source of ``in``, ``and``, ``or`` and ``not`` over integers only, compiled once. A query
    nested too deep for the compiler is evaluated node by node instead."""

    def source(n: object) -> str:
        if type(n) is int:
            return f"({n} in p)"
        assert isinstance(n, tuple)
        if n[0] == "!":
            return f"(not {source(n[1])})"
        joined = (" and " if n[0] == "&" else " or ").join(source(i) for i in n[1])
        return f"({joined})" if joined else ("True" if n[0] == "&" else "False")

    try:
        test = eval(compile(f"lambda p: {source(node)}", "<rule>", "eval"), {"__builtins__": {}})
    except (RecursionError, SyntaxError, MemoryError):
        return lambda present: _holds_numbered(node, present, None)
    return test  # type: ignore[no-any-return]


def _holds_numbered(node: object, present: set[int], found: _Found | None) -> bool:
    """``_holds`` over numbered terms (``_numbered``)."""
    if type(node) is int:
        return node in present
    assert isinstance(node, tuple)
    op = node[0]
    if op == "&":
        return all(_holds_numbered(i, present, found) for i in node[1])
    if op == "|":
        return any(_holds_numbered(i, present, found) for i in node[1])
    if op == "!":
        return not _holds_numbered(node[1], present, found)
    left, right, distance = node[1], node[2], node[3]
    if left not in present or right not in present:
        return False
    assert found is not None
    positions = found.positions
    lw = [positions.words(*s) for s in found.spans(left)]
    rw = [positions.words(*s) for s in found.spans(right)]
    return any(_gap(a, b) <= distance for a in lw for b in rw)


def _required(expr: object) -> frozenset[Term]:
    """Terms that occur in every text ``expr`` matches."""
    if isinstance(expr, Term):
        return frozenset((expr,))
    if isinstance(expr, And):
        return frozenset().union(*(_required(i) for i in expr.items))
    if isinstance(expr, Near):
        return _required(expr.left) | _required(expr.right)
    if isinstance(expr, Or):
        return frozenset.intersection(*(_required(i) for i in expr.items))
    return frozenset()


class _Positions:
    """Word numbers of character offsets in one text."""

    def __init__(self, text: str) -> None:
        self._starts = [m.start() for m in _WORD.finditer(text)]

    def words(self, start: int, end: int) -> tuple[int, int]:
        """First and last word numbers of ``text[start:end]``."""
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_left(self._starts, end) - 1
        return max(first, 0), max(last, first, 0)


def _leaves(expr: object, near: bool = False) -> Iterable[tuple[Term, bool]]:
    if isinstance(expr, Term):
        yield expr, near
    elif isinstance(expr, And | Or):
        for item in expr.items:
            yield from _leaves(item, near)
    elif isinstance(expr, Not):
        yield from _leaves(expr.item, near)
    elif isinstance(expr, Near):
        yield from _leaves(expr.left, True)
        yield from _leaves(expr.right, True)


def _positive_terms(expr: object) -> list[Term]:
    """Terms whose words show why a text matched: every term not under a NOT."""
    if isinstance(expr, Term):
        return [expr]
    if isinstance(expr, And | Or):
        return [t for item in expr.items for t in _positive_terms(item)]
    if isinstance(expr, Near):
        return _positive_terms(expr.left) + _positive_terms(expr.right)
    return []


def _gap(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Words between two word ranges (0 when they touch or overlap)."""
    if a[1] < b[0]:
        return b[0] - a[1] - 1
    if b[1] < a[0]:
        return a[0] - b[1] - 1
    return 0


def _proximity(
    hits: Sequence[list[tuple[int, int]]], slop: int, positions: _Positions
) -> list[tuple[int, int]]:
    """Character spans of the words of the smallest stretches holding every word with at most
    ``slop`` other words; [] when there is none."""
    if not all(hits):
        return []
    occurrences = sorted(
        (positions.words(start, end), k, (start, end)) for k, spans in enumerate(hits) for start, end in spans
    )
    need, count, have = len(hits), 0, [0] * len(hits)
    found: set[tuple[int, int]] = set()
    left = 0
    for right, (words, k, _) in enumerate(occurrences):
        if have[k] == 0:
            count += 1
        have[k] += 1
        while count == need:
            first_words, first_k, _ = occurrences[left]
            span_words = words[1] - first_words[0] + 1
            inside = {o[1] for o in occurrences[left : right + 1]}
            if len(inside) == need and span_words - _word_count(occurrences[left : right + 1], need) <= slop:
                found.update(o[2] for o in occurrences[left : right + 1])
            have[first_k] -= 1
            if have[first_k] == 0:
                count -= 1
            left += 1
    return sorted(found)


def _word_count(window: list[tuple[tuple[int, int], int, tuple[int, int]]], need: int) -> int:
    """Words the terms themselves take in a window: one occurrence of each."""
    best: dict[int, int] = {}
    for (first, last), k, _ in window:
        best[k] = max(best.get(k, 0), last - first + 1)
    return sum(best.values())


def _holds(
    expr: object, spans: Mapping[Term, list[tuple[int, int]]], positions: _Positions | None
) -> bool:
    if isinstance(expr, Term):
        return expr in spans
    if isinstance(expr, And):
        return all(_holds(i, spans, positions) for i in expr.items)
    if isinstance(expr, Or):
        return any(_holds(i, spans, positions) for i in expr.items)
    if isinstance(expr, Not):
        return not _holds(expr.item, spans, positions)
    if isinstance(expr, Near):
        assert isinstance(expr.left, Term) and isinstance(expr.right, Term)
        left, right = spans.get(expr.left), spans.get(expr.right)
        if not left or not right:
            return False
        assert positions is not None
        lw = [positions.words(*s) for s in left]
        rw = [positions.words(*s) for s in right]
        return any(_gap(a, b) <= expr.distance for a in lw for b in rw)
    raise TypeError(f"unresolved query node {expr!r}")


def narrowing_of(expr: Expr, stems: WordForms | None) -> Narrowing:
    """What every text a resolved query matches contains (``QueryMatcher.narrowing``)."""
    return _narrowing(expr, stems)


def _narrowing(expr: object, stems: WordForms | None) -> Narrowing:
    if isinstance(expr, Term):
        return _term_narrowing(expr, stems)
    if isinstance(expr, And | Near):
        items = expr.items if isinstance(expr, And) else (expr.left, expr.right)
        parts = tuple(n for n in (_narrowing(i, stems) for i in items) if n is not None)
        return None if not parts else parts[0] if len(parts) == 1 else AllOf(parts)
    if isinstance(expr, Or):
        alternatives = [_narrowing(i, stems) for i in expr.items]
        if any(a is None for a in alternatives):
            return None
        return AnyOf(tuple(alternatives))
    return None  # NOT: a match says nothing a database can look for


MIN_NARROWING = 2  # shorter substrings narrow nothing worth a condition


def _term_narrowing(term: Term, stems: WordForms | None) -> Narrowing:
    parts: list[Narrowing] = []
    for word in term.words:
        folded = _fold(word)
        found: tuple[str, ...] = (folded,)
        if term.morphology and not term.prefix and re.search("[а-я]", folded):
            if stems is None:
                continue
            found = tuple(dict.fromkeys(stems.stems(folded)))
        if all(len(s) >= MIN_NARROWING for s in found):
            parts.append(Contains(found[0]) if len(found) == 1 else AnyOf(tuple(Contains(s) for s in found)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


# --- compiling, with a cache ----------------------------------------------------------------


class QueryCompiler:
    """Resolves and compiles query texts; compiled matchers are kept per resolved query, since
    a console asks for the same query page after page."""

    def __init__(
        self, catalog: RuleCatalog, lemmatizer: Lemmatizer, stems: WordForms | None = None, keep: int = 256,
        resolved_for: float = 2.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.lemmatizer = lemmatizer
        self.stems = stems
        self._keep = keep
        self._compiled: dict[Expr, QueryMatcher] = {}
        # A query's references, resolved, are kept ``resolved_for`` seconds: a Review page asks
        # for the same query page after page, and looking its rules up was a third of a page.
        # Changes made here end them at once (``forget``); another process's, within that time.
        self._resolved_for = resolved_for
        self._clock = clock
        self._resolved: dict[str, tuple[float, Expr]] = {}

    def forget(self) -> None:
        """Keywords or saved rules changed: resolve every query again."""
        self._resolved.clear()

    async def compile(self, text: str) -> QueryMatcher:
        now = self._clock()
        kept = self._resolved.get(text)
        if kept is not None and now - kept[0] < self._resolved_for:
            expr = kept[1]
        else:
            expr = await resolve(parse(text), self.catalog)
            if len(self._resolved) >= self._keep:
                self._resolved.pop(next(iter(self._resolved)))
            self._resolved[text] = (now, expr)
        matcher = self._compiled.get(expr)
        if matcher is None:
            matcher = QueryMatcher(expr, self.lemmatizer, source=text, stems=self.stems)
            if len(self._compiled) >= self._keep:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[expr] = matcher
        return matcher


def compile_static(
    text: str, lemmatizer: Lemmatizer, keywords: Sequence[KeywordTerm] = (), rules: Mapping[str, str] | None = None,
    stems: WordForms | None = None,
) -> QueryMatcher:
    """A matcher for ``text`` with references looked up in the given lists (tests, benches):
    ``resolve`` with a ``StaticCatalog``, which never waits."""
    catalog = StaticCatalog(keywords, rules or {})
    coroutine = resolve(parse(text), catalog)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return QueryMatcher(done.value, lemmatizer, source=text, stems=stems)
    coroutine.close()
    raise RuntimeError("a static catalog never waits")


@dataclass
class StaticCatalog:
    keywords: Sequence[KeywordTerm] = ()
    rules: Mapping[str, str] = field(default_factory=dict)

    async def keywords_for(self, ids: Iterable[int], words: Iterable[str]) -> list[KeywordTerm]:
        wanted_ids, wanted_words = set(ids), set(words)
        return [k for k in self.keywords if k.id in wanted_ids or keyword_key(k.word) in wanted_words]

    async def rule_queries(self, names: Iterable[str]) -> dict[str, str]:
        by_key = {rule_key(n): q for n, q in self.rules.items()}
        return {n: by_key[n] for n in names if n in by_key}


def validate_rule_name(name: str) -> str:
    """The name as stored (spaces collapsed), or ``InvalidInput``."""
    checked_text(name, field="name")
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A rule needs a name", field="name")
    if len(name) > MAX_RULE_NAME:
        raise InvalidInput(f"A rule name is at most {MAX_RULE_NAME} characters", field="name")
    if '"' in name:
        raise InvalidInput('A rule name cannot contain `"`', field="name")
    return name
