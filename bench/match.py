"""Keyword matcher throughput: comments per second for 100, 1,000 and 10,000 keywords; and
the rule language's: 200 rules of 3-8 terms each, matched together (``domain.rules.RuleSet``).

Run: ``/tmp/venv/bin/python bench/match.py [--comments N] [--rules-only]``.

``--review 250000`` measures instead a Review page on PostgreSQL (admin DSN from
``VKCP_TEST_POSTGRES_URL``): a fresh database filled as ``bench/api.py`` fills it, then the
first page of 50 comments filtered by a saved rule (``rule:животные`` = ``(кошка OR собака)
-пожар``) against the same page filtered by one keyword (``keywordIds``), p50 of interleaved
reads through the read model, and the same for ``totalCount``. The database is dropped after.

``--stored-rules 250000`` measures saved rules' stored matches (``rule_matches``) on PostgreSQL:
a rule-filtered ``totalCount``, a rule's ``matchesCount`` and ``stats.topRules`` over 200 saved
rules, the query's path against the stored set (p50 of interleaved reads), then the comments/s
of the ANALYZE loop with and without writing the 200 rules' matches (batches in turns).

The rules mix every operator: OR groups, AND (written and implicit), NOT and ``-term``,
``"phrase"~N``, ``NEAR/N``, ``prefix*``, exact phrases; half their terms are lemmas the comments
use (so rules fire), half are not. A rule is evaluated only when one of its terms occurs.

The text is synthetic but morphologically real: lemmas come from the pymorphy3 dictionary and
every lemma appears in many of its forms, drawn with a Zipf distribution (as words in real
comments are), after a head of frequent function words. Keywords are dictionary nouns and verbs.

Every keyword set holds the same few "topic" lemmas that occur in the comments; the rest are
lemmas no comment word is a form of, so matches per comment stay equal and the 10,000 / 100
ratio shows what the number of keywords itself costs. A last "dense" row makes a tenth of the
comment lemmas keywords, to show what many matches per comment cost (each builds a snippet).

"Cold" is the first pass with empty caches (every new word goes through pymorphy3); "warm"
is the best of five later passes, taken in turns for all keyword sets.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from domain.matching import KeywordMatcher, KeywordRule
from domain.rules import RuleSet
from domain.rules import parse as parse_query
from infrastructure.morphology import PymorphyLemmatizer, get_analyzer

SEED = 20240501
VOCABULARY_LEMMAS = 3000
TOPIC_LEMMAS = 20
KEYWORD_COUNTS = (100, 1_000, 10_000)
WARM_ROUNDS = 5
FUNCTION_WORDS = (
    "и в не на что я с он а как это по но все так у же вы за бы к то мы из ты о от она для "
    "да нет там только еще уже вот если или когда даже ну их тут кто-то его ее они были "
    "очень просто можно надо будет было есть сейчас тоже почему где потому"
).split()
_SKIP_GRAMMEMES = {"Name", "Surn", "Patr", "Abbr", "Orgn", "Trad", "Init"}
_LETTERS = "абвгдежзийклмнопрстуфхцчшщыэюя"


def dictionary_lemmas(morph) -> dict[str, str]:
    """Lemma -> "NOUN" / "VERB" / "ADJF", sampled from the dictionary by three-letter prefixes."""
    pool: dict[str, str] = {}
    for a, b, c in itertools.product(_LETTERS, repeat=3):
        for _word, tag, normal_form, _, _ in itertools.islice(
            morph.dictionary.iter_known_words(a + b + c), 200
        ):
            if tag.POS not in ("NOUN", "ADJF", "VERB", "INFN") or _SKIP_GRAMMEMES & tag.grammemes:
                continue
            pool.setdefault(normal_form, "VERB" if tag.POS in ("VERB", "INFN") else tag.POS)
    return pool


def word_forms(morph, lemma: str) -> list[str]:
    for parse in morph.parse(lemma):
        if parse.normal_form == lemma:
            return sorted({form.word for form in parse.lexeme})
    return [lemma]


def keywords_never_found(
    morph, lemmas: list[str], pool: dict[str, str], vocabulary: list[list[str]]
) -> list[str]:
    """Nouns and verbs of ``lemmas`` that match no comment word, homonyms included."""
    candidates = [w for w in lemmas if pool[w] != "ADJF"]
    matcher = KeywordMatcher(
        (KeywordRule(id=i, word=w) for i, w in enumerate(candidates)), PymorphyLemmatizer(morph)
    )
    found = {hit.keyword_id for forms in vocabulary for f in forms for hit in matcher.match(f)}
    return [w for i, w in enumerate(candidates) if i not in found]


def make_comments(rng: random.Random, vocabulary: list[list[str]], count: int) -> list[str]:
    """Comments of 10-40 words; word i of the vocabulary is drawn with weight 1 / (i + 1)."""
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    comments = []
    for _ in range(count):
        lemmas = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(10, 40))
        words = []
        for forms in lemmas:
            word = rng.choice(forms)
            roll = rng.random()
            if roll < 0.08:
                word += ","
            elif roll < 0.12:
                word += rng.choice((".", "!", "?", "...", " :)"))
            words.append(word)
        words[0] = words[0].capitalize()
        comments.append(" ".join(words))
    return comments


def run(matcher: KeywordMatcher, comments: list[str]) -> tuple[float, int]:
    # As timeit does: the collector would otherwise charge this pass for earlier garbage.
    gc.collect()
    gc.disable()
    try:
        hits = 0
        started = time.perf_counter()
        for text in comments:
            hits += len(matcher.match(text))
        return time.perf_counter() - started, hits
    finally:
        gc.enable()


def measure(morph, keyword_sets: dict[str, list[str]], comments: list[str]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    matchers: dict[str, KeywordMatcher] = {}
    for label, words in keyword_sets.items():
        lemmatizer = PymorphyLemmatizer(morph)  # a fresh cache, so the first pass is really cold
        started = time.perf_counter()
        matchers[label] = KeywordMatcher(
            (KeywordRule(id=i, word=word) for i, word in enumerate(words, 1)), lemmatizer
        )
        built = time.perf_counter() - started
        cold, hits = run(matchers[label], comments)
        results[label] = {"build": built, "cold": cold, "hits": hits / len(comments), "warm": []}
    # Warm passes take turns, so that a busy moment of the machine spreads over all sets.
    for _ in range(WARM_ROUNDS):
        for label, matcher in matchers.items():
            results[label]["warm"].append(run(matcher, comments)[0])
    for result in results.values():
        result["warm"] = min(result["warm"])
    return results


RULES = 200


def make_rules(rng: random.Random, common: list[str], rare: list[str], count: int = RULES) -> list[str]:
    """``count`` queries of 3-8 terms each, every operator of the language among them."""
    rules = []
    for _ in range(count):
        n = rng.randint(3, 8)

        def word() -> str:
            return rng.choice(common if rng.random() < 0.5 else rare)

        parts: list[str] = []
        left = n
        while left > 0:
            kind = rng.choice(("or", "and", "not", "near", "slop", "prefix", "phrase")) if parts else "or"
            if kind in ("or", "near", "slop", "phrase") and left >= 2:
                a, b = word(), word()
                parts.append({"or": f"({a} OR {b})", "near": f"{a} NEAR/{rng.randint(1, 5)} {b}",
                              "slop": f'"{a} {b}"~{rng.randint(1, 5)}', "phrase": f'"{a} {b}"'}[kind])
                left -= 2
            elif kind == "not":
                parts.append(rng.choice(("NOT ", "-")) + word())
                left -= 1
            elif kind == "prefix":
                parts.append(word()[:4].rstrip("-") + "*")
                left -= 1
            else:
                parts.append(word())
                left -= 1
        rules.append(rng.choice((" ", " AND ")).join(parts))
    return rules


def measure_rules(morph, rules: list[str], comments: list[str]) -> dict:
    started = time.perf_counter()
    rule_set = RuleSet([parse_query(r) for r in rules], PymorphyLemmatizer(morph))
    built = time.perf_counter() - started

    def one_pass() -> tuple[float, int]:
        gc.collect()
        gc.disable()
        try:
            fired = 0
            began = time.perf_counter()
            for text in comments:
                fired += len(rule_set.matching(text))
            return time.perf_counter() - began, fired
        finally:
            gc.enable()

    cold, fired = one_pass()
    warm = min(one_pass()[0] for _ in range(WARM_ROUNDS))
    operators = re.compile(r"\b(?:AND|OR|NOT)\b|NEAR/\d+|~\d+")
    terms = sum(len(re.findall(r"[\w-]+\*?", operators.sub(" ", r))) for r in rules)
    return {"build": built, "cold": cold, "warm": warm, "fired": fired / len(comments), "terms": terms}


REVIEW_RULE = "(кошка OR собака) -пожар"


@contextlib.asynccontextmanager
async def filled_database(kind: str, comments: int):
    """A PostgreSQL database of its own, migrated and filled with ``comments`` comments by
    bench/api.py's ``fill``; yields (bench/api.py, its engine); dropped afterwards."""
    import importlib
    import uuid

    import asyncpg

    from infrastructure.db.engine import create_engine
    from infrastructure.db.migrate import upgrade_async

    api = importlib.import_module("api")  # bench/api.py, beside this script: its database fill
    name = f"vkcp_bench_{kind}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(api.ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{api.ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = None
    try:
        await upgrade_async(url)
        print(f"database {name}: {comments:,} comments filled in {await api.fill(dsn, comments):.1f} s", flush=True)
        engine = create_engine(url)
        yield api, engine
    finally:
        if engine is not None:
            await engine.dispose()
        admin = await asyncpg.connect(api.ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def review(comments: int, rounds: int) -> None:
    import statistics
    from datetime import UTC, datetime

    from domain.queries import CommentFilter, CommentOrder
    from infrastructure.db.engine import read_session_factory, session_factory
    from infrastructure.db.queries import SqlReadModel
    from infrastructure.db.rules import SqlRules

    async with filled_database("rules", comments) as (_api, engine):
        await SqlRules(session_factory(engine)).add_rule("Животные", "животные", REVIEW_RULE, None, datetime.now(UTC))
        reads = SqlReadModel(read_session_factory(engine))
        filters = {"keyword": CommentFilter(keyword_ids=(1,)), "rule": CommentFilter(query="rule:животные")}

        async def page(flt: CommentFilter) -> float:
            began = time.perf_counter()
            found = await reads.comments_page(flt, CommentOrder(), first=50)
            assert len(found.edges) == 50
            return time.perf_counter() - began

        async def count(flt: CommentFilter) -> float:
            began = time.perf_counter()
            await reads.comments_count(flt)
            return time.perf_counter() - began

        sizes = {label: await reads.comments_count(flt) for label, flt in filters.items()}
        for measure in (page, count):
            times: dict[str, list[float]] = {label: [] for label in filters}
            n = rounds if measure is page else max(5, rounds // 10)
            for i in range(n + 3):  # three rounds to warm caches, not counted
                for label, flt in filters.items():
                    spent = await measure(flt)
                    if i >= 3:
                        times[label].append(spent)
            p50 = {label: statistics.median(t) * 1000 for label, t in times.items()}
            print(
                f"{measure.__name__:>6}: keyword p50 {p50['keyword']:.1f} ms, rule p50 {p50['rule']:.1f} ms, "
                f"rule / keyword = {p50['rule'] / p50['keyword']:.2f}"
                + ("   (target <= 1.5)" if measure is page else "")
            )
        print(f"comments matched: keyword {sizes['keyword']:,}, rule {sizes['rule']:,} of {comments:,}")


async def stored_rules(comments: int, rounds: int, analyzed: int, reads_too: bool = True) -> None:
    """Saved rules' stored matches (``rule_matches``) against running their queries, at
    ``comments`` comments on PostgreSQL, 200 saved rules. Interleaved, p50 of ``rounds``:

    - a rule-filtered ``totalCount`` (the rule and one community): the query's path
      (``_query_count``) against the stored set joined to the comments;
    - a rule's ``matchesCount`` (the rule alone): the query's path against the index count;
    - ``stats.topRules`` (all 200 rules): one ``RuleSet`` over every candidate against the
      index counts.

    Then what storing them costs an analysis: the ANALYZE loop's batches (read texts, match
    keywords, replace matches, commit) over ``analyzed`` comments, batches taken in turns with
    and without the saved rules' matches written (``domain.rule_index.index_comments``):
    comments/s of each, and this process's CPU a comment (steadier than wall time on a shared
    machine; the database's own work is not in it). ``--analysis-only`` skips the reads."""
    import statistics
    from datetime import UTC, datetime

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bootstrap
    from domain.analyze import ANALYZE_BATCH
    from domain.queries import CommentFilter
    from domain.rule_index import index_comments, rebuild_rule_matches
    from infrastructure.db.engine import read_session_factory, session_factory
    from infrastructure.db.queries import SqlReadModel
    from infrastructure.db.rules import SqlRules
    from infrastructure.db.uow import SqlUnitOfWork

    async with filled_database("stored_rules", comments) as (api, engine):
        sessions = session_factory(engine)
        store = SqlRules(sessions)
        now = datetime.now(UTC)
        await store.add_rule("Животные", "животные", REVIEW_RULE, None, now)
        vocabulary = api.VOCABULARY
        absent = [f"нет{i}слова" for i in range(400)]
        for i, query in enumerate(make_rules(random.Random(SEED + 2), vocabulary, absent, RULES - 1)):
            await store.add_rule(f"r{i}", f"r{i}", query, None, now)
        saved = await store.list_rules()
        reads = SqlReadModel(read_session_factory(engine))
        uow_factory = lambda: SqlUnitOfWork(sessions)  # noqa: E731
        began = time.perf_counter()
        built = await rebuild_rule_matches(uow_factory, lambda: datetime.now(UTC))
        print(f"{built['rules']} rules indexed in {time.perf_counter() - began:.1f} s "
              f"({built['ruleMatches']:,} rows)", flush=True)

        rule_only = CommentFilter(query="rule:животные")
        with_group = CommentFilter(query="rule:животные", group_ids=(1,))
        names = [f'rule:"{r.name}"' for r in saved]
        cases = {  # label: (today's path, the stored matches')
            "rule totalCount (+community)": (
                lambda: reads._query_count(with_group), lambda: reads.comments_count(with_group)
            ),
            "matchesCount": (lambda: reads._query_count(rule_only), lambda: reads.comments_count(rule_only)),
            "topRules (200 rules)": (lambda: reads._run_counts(names), lambda: reads.rule_counts(names)),
        }
        for label, (before, after) in cases.items() if reads_too else ():
            b, a = await before(), await after()
            assert b == a, (label, b, a)
            times: dict[str, list[float]] = {"before": [], "after": []}
            n = max(5, rounds // 10) if label.startswith("topRules") else rounds
            for i in range(n + 2):
                for which, call in (("before", before), ("after", after)):
                    t0 = time.perf_counter()
                    await call()
                    if i >= 2:
                        times[which].append(time.perf_counter() - t0)
            p50 = {w: statistics.median(t) * 1000 for w, t in times.items()}
            print(f"{label:>30}: before p50 {p50['before']:8.1f} ms, after p50 {p50['after']:7.2f} ms, "
                  f"before / after = {p50['before'] / p50['after']:,.0f}")

        # The analysis' cost: batches of the ANALYZE loop, in turns with and without rule matches.
        factory = bootstrap.build_matcher_factory()
        async with uow_factory() as uow:
            matcher = factory(await uow.keywords.list_active())
        spent = {"without": 0.0, "with": 0.0}
        cpu = {"without": 0.0, "with": 0.0}  # this process's CPU (the database's is not in it)
        done = {"without": 0, "with": 0}
        after_id, turn = 0, 0
        while after_id < analyzed:
            mode = ("without", "with")[turn % 2]
            t0, c0 = time.perf_counter(), time.process_time()
            async with uow_factory() as uow:
                rows = await uow.comments.iter_texts(group_ids=None, after_id=after_id, limit=ANALYZE_BATCH)
                if not rows:
                    break
                found = matcher(rows) if matcher is not None else []
                await uow.matches.replace_for_comments([i for i, _ in rows], found)
                if mode == "with":
                    await index_comments(uow, rows)
                await uow.commit()
            spent[mode] += time.perf_counter() - t0
            cpu[mode] += time.process_time() - c0
            done[mode] += len(rows)
            after_id = rows[-1][0]
            turn += 1
        speed = {m: done[m] / spent[m] for m in spent}
        print(f"analysis, {len(saved)} saved rules: without rule matches {speed['without']:,.0f} comments/s, "
              f"with {speed['with']:,.0f} comments/s (with / without = {speed['with'] / speed['without']:.2f}; "
              f"{done['with']:,} + {done['without']:,} comments in batches of {ANALYZE_BATCH:,}, in turns)")
        per = {m: cpu[m] / done[m] * 1e6 for m in cpu}
        print(f"analysis CPU of this process: without {per['without']:.1f} µs a comment, with {per['with']:.1f} µs "
              f"(the saved rules add {per['with'] - per['without']:.1f} µs a comment)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=20_000)
    parser.add_argument("--rules-only", action="store_true", help="measure the 200 rules only")
    parser.add_argument("--review", type=int, metavar="COMMENTS", help="measure a Review page on PostgreSQL instead")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--stored-rules", type=int, metavar="COMMENTS",
        help="measure saved rules' stored matches against running their queries on PostgreSQL instead",
    )
    parser.add_argument("--analyzed", type=int, default=40_000, help="comments re-analyzed for --stored-rules")
    parser.add_argument("--analysis-only", action="store_true", help="--stored-rules: the analysis only, not the reads")
    args = parser.parse_args()
    if args.stored_rules:
        import asyncio

        asyncio.run(stored_rules(args.stored_rules, args.rounds, args.analyzed, reads_too=not args.analysis_only))
        return
    if args.review:
        import asyncio

        asyncio.run(review(args.review, args.rounds))
        return
    rng = random.Random(SEED)

    started = time.perf_counter()
    morph = get_analyzer()
    pool = dictionary_lemmas(morph)
    lemmas = sorted(pool)
    rng.shuffle(lemmas)
    vocabulary_lemmas = lemmas[:VOCABULARY_LEMMAS]
    vocabulary = [[w] for w in FUNCTION_WORDS] + [word_forms(morph, w) for w in vocabulary_lemmas]
    comments = make_comments(rng, vocabulary, args.comments)
    # Topic keywords: mid-frequency nouns and verbs of the comments.
    topics = [w for w in vocabulary_lemmas[50:] if pool[w] != "ADJF"][:TOPIC_LEMMAS]
    unused = keywords_never_found(morph, lemmas[VOCABULARY_LEMMAS:], pool, vocabulary)
    dense = [w for w in vocabulary_lemmas if pool[w] != "ADJF"][: VOCABULARY_LEMMAS // 10]
    words_total = sum(len(c.split()) for c in comments)
    distinct = len({w for c in comments for w in re.findall(r"\w+", c.lower())})
    print(
        f"setup {time.perf_counter() - started:.1f} s: {len(pool)} dictionary lemmas, "
        f"{len(comments)} comments, {words_total / len(comments):.1f} words each, "
        f"{distinct} distinct word forms"
    )

    rules = make_rules(random.Random(SEED + 1), vocabulary_lemmas[50:400], unused[:2000])
    r = measure_rules(morph, rules, comments)
    n = len(comments)
    print()
    print(f"{len(rules)} rules, {r['terms'] / len(rules):.1f} terms each (e.g. {rules[0]!r})")
    print(
        f"build {r['build']:.2f} s, rules matched per comment {r['fired']:.2f}, cold {n / r['cold']:,.0f} c/s, "
        f"warm {n / r['warm']:,.0f} c/s ({r['warm'] / n * 1e6:.1f} µs/comment)"
    )
    print(f"warm comments/s with {len(rules)} rules on one core = {n / r['warm']:,.0f}   (target >= 20,000)")
    if args.rules_only:
        return

    keyword_sets = {}
    for count in KEYWORD_COUNTS:
        if count - TOPIC_LEMMAS > len(unused):
            sys.exit(f"only {len(unused)} unused lemmas for {count} keywords")
        keyword_sets[f"{count:,}"] = topics + unused[: count - TOPIC_LEMMAS]
    most = KEYWORD_COUNTS[-1]
    keyword_sets[f"{most:,} dense"] = dense + unused[: most - len(dense)]
    rows = list(measure(morph, keyword_sets, comments).items())

    n = len(comments)
    print()
    header = ("keywords", "build s", "hits/comm", "cold c/s", "warm c/s", "warm µs/c")
    print(f"{header[0]:>14}" + "".join(f"{h:>11}" for h in header[1:]))
    for label, r in rows:
        print(
            f"{label:>14} {r['build']:>10.2f} {r['hits']:>10.2f} {n / r['cold']:>10,.0f} "
            f"{n / r['warm']:>10,.0f} {r['warm'] / n * 1e6:>10.1f}"
        )
    by_label = dict(rows)
    ratio = by_label[f"{KEYWORD_COUNTS[-1]:,}"]["warm"] / by_label[f"{KEYWORD_COUNTS[0]:,}"]["warm"]
    speed_1000 = n / by_label["1,000"]["warm"]
    print()
    print(f"warm time(10,000) / time(100) = {ratio:.2f}   (target <= 1.5)")
    print(f"warm comments/s with 1,000 keywords = {speed_1000:,.0f}   (target >= 20,000)")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
