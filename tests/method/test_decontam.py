from __future__ import annotations

import json

from heal_batch.method.decontam import (
    build_ngram_index,
    contaminated,
    frequent_grams,
    near_duplicate_key,
    ngrams,
    normalize_text,
    overlap_count,
)

BENCH = (
    "Let $f(x) = 3x^2 - 5$. Find the value of $f(f(1))$ when the function is applied twice "
    "to the number one."
)


def test_normalize_text():
    assert normalize_text("Find  $x^2$!\n") == "find x 2"
    assert normalize_text("ＡＢＣ １２") == "abc 12"  # NFKC folds full-width forms
    assert normalize_text("snake_case-word") == "snake case word"


def test_ngrams():
    text = " ".join(f"w{i}" for i in range(15))
    assert len(ngrams(text, 13)) == 3
    assert ngrams("too short", 13) == set()


def test_contamination_hit_despite_case_punctuation_and_spacing():
    index = build_ngram_index([BENCH])
    reworded = "Problem: LET f(x)=3x^2-5 . Find the value of f(f(1)) when the function is applied"
    assert contaminated(reworded, index)
    assert contaminated("Some preamble. " + BENCH.upper() + " Answer: 43", index)


def test_contamination_miss_on_shared_short_phrases():
    index = build_ngram_index([BENCH])
    other = "Let $g(x) = 2x + 7$. Find the value of $g(g(2))$ for the function above."
    assert not contaminated(other, index)
    assert overlap_count(other, index) == 0


def test_min_overlap():
    index = build_ngram_index([BENCH])
    words = normalize_text(BENCH).split()
    one_gram_only = " ".join(words[:13])
    assert overlap_count(one_gram_only, index) == 1
    assert contaminated(one_gram_only, index, min_overlap=1)
    assert not contaminated(one_gram_only, index, min_overlap=2)


def test_short_benchmark_texts_are_indexed_whole():
    index = build_ngram_index(["Compute 2 + 3 times 4.", "Add 1."])
    assert index.short == frozenset({"compute 2 3 times 4"})
    assert contaminated("Please compute 2+3 times 4, quickly", index)
    assert not contaminated("compute 2 + 3 times 5", index)
    assert not contaminated("Add 1.", index)  # below min_short_words: not indexed


def test_near_duplicate_key():
    assert near_duplicate_key("What is 2+2?") == near_duplicate_key("what is 2 + 2 ")
    assert near_duplicate_key("What is 2+2?") != near_duplicate_key("What is 2+3?")
    assert len(near_duplicate_key("x")) == 32


def test_every_math500_problem_hits_its_own_index(shared_data):
    rows = [json.loads(line) for line in (shared_data / "math500.jsonl").read_text().splitlines()]
    index = build_ngram_index(r["problem"] for r in rows)
    missed = [
        r["id"]
        for r in rows
        if len(normalize_text(r["problem"]).split()) >= 4 and not contaminated(r["problem"], index)
    ]
    assert missed == []


STOCK = "can be written as m/n, where m and n are relatively prime positive integers. Find m+n."


def test_boilerplate_grams_can_be_ignored():
    bench = "A fair coin is tossed ten times. The probability of no two heads in a row " + STOCK
    index = build_ngram_index([bench])
    train = [
        f"Problem {i}: a die is rolled {i} times; the chance of a six " + STOCK for i in range(4)
    ]
    assert all(contaminated(t, index) for t in train)  # the plain 13-gram rule
    boiler = frequent_grams(train, index, min_texts=3)
    assert boiler and all("relatively prime" in g for g in boiler)
    clean = index.without(boiler)
    assert not any(contaminated(t, clean) for t in train)
    assert contaminated(bench, clean)  # the benchmark problem itself is still caught


def test_aime_train_boilerplate_measurement(shared_data):
    def problems(name):
        lines = (shared_data / name).read_text().splitlines()
        return [json.loads(line)["problem"] for line in lines]

    bench = [p for f in ("aime24.jsonl", "aime25.jsonl", "math500.jsonl") for p in problems(f)]
    train = problems("aime_1983_2023_train.jsonl")
    index = build_ngram_index(bench)
    plain = sum(contaminated(t, index) for t in train)
    clean = index.without(frequent_grams(train, index, min_texts=3))
    assert sum(contaminated(t, clean) for t in train) < plain / 3
