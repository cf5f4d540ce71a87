"""Decontamination against evaluation sets and near-duplicate keys, on normalised word n-grams.

Inputs: benchmark problem texts (to build an index) and training texts (to test). Outputs: an
``NgramIndex``, overlap counts and a contaminated yes/no, and a hash key for near-duplicates.

Normalisation: Unicode NFKC, case-folded, every character that is not a letter or digit becomes a
space, whitespace collapses; words are what remains. So ``"Find $x^2$!"`` -> ``"find x 2"``.
N-grams are runs of n consecutive words (n = 13 by default, the common choice for benchmark
decontamination). A benchmark text shorter than n words is indexed whole (if it has at least
``min_short_words`` words) so short problems are caught when they appear verbatim.

Boilerplate: competition problems share long stock phrases ("... where m and n are relatively prime
positive integers. Find m+n."), so the plain 13-gram rule flags 207 of the 975 problems in
``aime_1983_2023_train.jsonl`` against the seven benchmark sets in ``shared/data``, most of them
through such phrases alone. ``frequent_grams`` finds the index n-grams that occur in many training
texts and ``NgramIndex.without`` drops them; ignoring those found in >= 3 AIME training problems
leaves 31 flagged. The price: a benchmark problem copied into >= 3 training texts is no longer
caught through its own n-grams, so deduplicate the training texts first.

Example::

    >>> index = build_ngram_index(["What is the sum of the first five primes?"], n=6)
    >>> contaminated("Q: what is the SUM of the first five primes? A: 28", index)
    True
    >>> contaminated("What is the product of the first five primes?", index)
    False
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_N = 13
_NON_WORD = re.compile(r"[\W_]+")  # letters and digits of any script are word characters


@dataclass(frozen=True)
class NgramIndex:
    """N-grams of a set of benchmark texts. ``grams`` holds space-joined n-grams; ``short``
    holds whole normalised texts shorter than n words; ``n_texts`` counts the indexed texts."""

    n: int
    grams: frozenset[str]
    short: frozenset[str]
    n_texts: int

    def without(self, ignored: Iterable[str]) -> NgramIndex:
        """The same index minus ``ignored`` n-grams and short texts (e.g. boilerplate)."""
        drop = frozenset(ignored)
        return NgramIndex(self.n, self.grams - drop, self.short - drop, self.n_texts)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, non-alphanumerics replaced by spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_split_words(folded))


def ngrams(text: str, n: int = DEFAULT_N) -> set[str]:
    """The space-joined word n-grams of ``normalize_text(text)`` (empty if it has < n words)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return _grams(normalize_text(text).split(), n)


def build_ngram_index(
    texts: Iterable[str], n: int = DEFAULT_N, *, min_short_words: int = 4
) -> NgramIndex:
    """Index the n-grams of every text; texts with ``min_short_words <= words < n`` go whole."""
    grams: set[str] = set()
    short: set[str] = set()
    count = 0
    for text in texts:
        count += 1
        words = normalize_text(text).split()
        if len(words) >= n:
            grams |= _grams(words, n)
        elif len(words) >= min_short_words:
            short.add(" ".join(words))
    return NgramIndex(n, frozenset(grams), frozenset(short), count)


def frequent_grams(texts: Iterable[str], index: NgramIndex, min_texts: int) -> frozenset[str]:
    """Index n-grams (and short texts) that occur in at least ``min_texts`` of ``texts``."""
    if min_texts < 1:
        raise ValueError(f"min_texts must be >= 1, got {min_texts}")
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_matches(normalize_text(text).split(), index))
    return frozenset(g for g, c in counts.items() if c >= min_texts)


def contaminated_texts(
    texts: Iterable[str], index: NgramIndex, ignore_in_texts: int | None = None
) -> set[str]:
    """The distinct ``texts`` that share an n-gram (or short text) with ``index``.

    With ``ignore_in_texts``, n-grams found in at least that many of the distinct texts are
    ignored (boilerplate). The same answer as
    ``contaminated(t, index.without(frequent_grams(...)))`` for each text, from one normalisation
    of each distinct text instead of two.
    """
    if ignore_in_texts is not None and ignore_in_texts < 0:
        raise ValueError(f"ignore_in_texts must be >= 0 or None, got {ignore_in_texts}")
    found: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for text in set(texts):
        if matches := _matches(normalize_text(text).split(), index):
            found[text] = matches
            counts.update(matches)
    ignored = {g for g, c in counts.items() if c >= ignore_in_texts} if ignore_in_texts else set()
    return {text for text, matches in found.items() if matches - ignored}


def overlap_count(text: str, index: NgramIndex) -> int:
    """How many distinct index n-grams (and whole short texts) occur in ``text``."""
    return len(_matches(normalize_text(text).split(), index))


def contaminated(text: str, index: NgramIndex, *, min_overlap: int = 1) -> bool:
    """True when ``text`` shares at least ``min_overlap`` n-grams (or short texts) with
    ``index``."""
    if min_overlap < 1:
        raise ValueError(f"min_overlap must be >= 1, got {min_overlap}")
    return overlap_count(text, index) >= min_overlap


def near_duplicate_key(text: str) -> str:
    """A 32-hex-digit key equal for texts that differ only in case, punctuation or whitespace."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:32]


def _split_words(folded: str) -> list[str]:
    return [w for w in _NON_WORD.split(folded) if w]


def _matches(words: list[str], index: NgramIndex) -> set[str]:
    found = _grams(words, index.n) & index.grams
    for length in {len(s.split()) for s in index.short}:
        found |= _grams(words, length) & index.short
    return found


def _grams(words: list[str], n: int) -> set[str]:
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
