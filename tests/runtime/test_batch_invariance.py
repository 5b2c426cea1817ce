"""A sentence's translation does not depend on what it is batched with.

`translate(batch)` must equal `[translate(s) for s in batch]`, token for token and score for score,
for every variant, greedy and beam, any batch size, and threads `auto`, 1 or 2. Scores are compared
exactly: they are the first thing to move when a scale is shared across rows (per-tensor int8), long
before a token flips. tests/test_quantize.py checks that this comparison does catch per-tensor
scaling.
"""

from __future__ import annotations

import random

import pytest

from traductor.runtime import Translator
from traductor.runtime.package import read_config

from ..conftest import TINY_MODEL, WORDS


def random_sources(seed: int, n: int) -> list[str]:
    """Sentences of 1 to 14 words: source lengths spread over several padding buckets."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def batch_vs_single_differences(tr: Translator, texts: list[str], **options) -> list[str]:
    """Each text translated inside the batch vs alone -> a description of every difference."""
    options = {**options, "return_scores": True}
    together = tr.translate(texts, **options)
    problems = []
    for i, text in enumerate(texts):
        alone = tr.translate(text, **{**options, "batch_size": 1})
        got = [(c.tokens, c.log_prob, c.score) for c in together[i].hypotheses]
        want = [(c.tokens, c.log_prob, c.score) for c in alone.hypotheses]
        if got != want:
            problems.append(f"{text!r}: in the batch {got[0][:2]}, alone {want[0][:2]}")
    return problems


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [None, 1, 2], ids=["auto", "t1", "t2"])
@pytest.mark.parametrize("beam", [1, 4])
def test_batch_result_equals_single_results(variant, threads, beam):
    tr = Translator(TINY_MODEL, variant=variant, intra_threads=threads)
    # 40 sentences x 4 beams = 160 rows: with threads=auto the all-core sessions serve the batch
    # while a sentence alone runs on one thread.
    texts = random_sources(seed=100 * beam + 10 * (threads or 0) + len(variant), n=40)
    for batch_size in (40, 7):
        options = dict(beam_size=beam, batch_size=batch_size, num_hypotheses=min(beam, 2))
        assert batch_vs_single_differences(tr, texts, **options) == []


def test_batches_hold_one_padded_length(monkeypatch):
    """The runtime never pads a sentence beyond its own bucket, whatever the batch size."""
    tr = Translator(TINY_MODEL, variant="int8", intra_threads=1)
    multiple = tr.config.decoding.source_pad_multiple
    seen = []
    original = tr._search

    def spy(seqs, opts):
        ids, _ = tr._pad(seqs)
        seen.append((ids.shape[1], {-(-len(s) // multiple) * multiple for s in seqs}))
        return original(seqs, opts)

    monkeypatch.setattr(tr, "_search", spy)
    tr.translate(random_sources(seed=5, n=30), beam_size=1, batch_size=64)
    assert len(seen) > 1
    for width, buckets in seen:
        assert buckets == {width}


SHIPPED = TINY_MODEL.parents[2] / "models" / "es-en"
VERSES = TINY_MODEL.parents[2] / "benchmarks" / "test-books.es.txt"


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="the shipped model is not in this checkout")
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_shipped_model_batch_result_equals_single_results(variant):
    """Random batches of test-book verses, as a server or a batch job would form them."""
    if not (SHIPPED / read_config(SHIPPED).variants[variant].decoder).is_file():
        pytest.skip(f"the shipped {variant} variant is not built in this checkout (`make fp32` rebuilds it)")
    tr = Translator(SHIPPED, variant=variant)
    verses = VERSES.read_text(encoding="utf-8").splitlines()
    rng = random.Random(7)
    for beam in (1, 4):
        for _ in range(3):
            batch = rng.sample(verses, 12)
            assert batch_vs_single_differences(tr, batch, beam_size=beam, batch_size=12) == []
