"""Keyword matcher throughput: comments per second for 100, 1,000 and 10,000 keywords.

Run: ``/tmp/venv/bin/python bench/match.py [--comments N]``.

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
import gc
import itertools
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from domain.matching import KeywordMatcher, KeywordRule
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=20_000)
    args = parser.parse_args()
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
