"""A sentence's translation does not depend on what it is batched with.

`translate(batch)` must equal `[translate(s) for s in batch]`, token for token and score for score,
for every variant, greedy and beam, any batch size, and threads `auto`, 1 or 2. Scores are compared
exactly: they are the first thing to move when a scale is shared across rows (per-tensor int8), long
before a token flips. tests/test_quantize.py checks that this comparison does catch per-tensor
scaling.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from traductor.runtime import Translator
from traductor.runtime.package import padded_length, read_config

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


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_padding_past_a_sentences_own_length_is_exact(variant, threads):
    """What lets sentences of any lengths share a batch: padded to any longer multiple of 8, a
    source's encoder K/V (its real positions) and the decoder's log-probs are bit for bit those of
    the source padded to its own length."""
    tr = Translator(TINY_MODEL, variant=variant, intra_threads=threads)
    m, multiple = tr.model, tr.config.decoding.source_pad_multiple
    assert multiple == 8
    rng = np.random.default_rng(len(variant) + threads)
    bos, eos = tr.config.special_tokens.bos_id, tr.config.special_tokens.eos_id
    for length in (1, 5, 8, 9, 23, 40, 63):
        ids = [int(t) for t in rng.integers(4, tr.config.dims.vocab_size, length - 1)] + [eos]
        own_ids, own_mask = tr._pad([ids])
        own = own_ids.shape[1]
        for width in (own + 8, own + 24, 128):
            long_ids = np.zeros((1, width), dtype=np.int64)
            long_ids[0, :length] = ids
            long_mask = (np.arange(width) < length).astype(np.int64)[None]
            # The runtime's encode() runs each row at its own padded length; call the graph itself.
            feeds = {"input_ids": long_ids, "attention_mask": long_mask}
            long_cross = m.encoder.run(m.enc_out_names, feeds)
            own_cross = m.encoder.run(
                m.enc_out_names, {"input_ids": own_ids, "attention_mask": own_mask}
            )
            for a, b in zip(own_cross, long_cross):
                assert np.array_equal(a, b[:, :, :own]), (
                    f"encoder, {length} tokens padded to {width}"
                )
            past_a, past_b, token = m.empty_past(1), m.empty_past(1), np.array([[bos]])
            for position in range(4):
                lp_a, past_a = m.step(token, position, own_mask, past_a, own_cross)
                lp_b, past_b = m.step(token, position, long_mask, past_b, long_cross)
                assert np.array_equal(lp_a, lp_b), (
                    f"decoder step {position}, {length} tokens padded to {width}"
                )
                token = np.array([[int(lp_a.argmax())]])


def test_sentences_of_different_lengths_share_a_batch(monkeypatch):
    """Batches are cut by batch_size only (sorted by length), not by padded length."""
    tr = Translator(TINY_MODEL, variant="int8", intra_threads=1)
    multiple = tr.config.decoding.source_pad_multiple
    seen = []
    original = tr._search

    def spy(seqs, opts):
        seen.append(({padded_length(len(s), multiple) for s in seqs}, len(seqs)))
        return original(seqs, opts)

    monkeypatch.setattr(tr, "_search", spy)
    texts = random_sources(seed=5, n=30)
    tr.translate(texts, beam_size=1, batch_size=64)
    assert len(seen) == 1 and len(seen[0][0]) > 1 and seen[0][1] == 30
    seen.clear()
    tr.translate(texts, beam_size=1, batch_size=8)
    assert [n for _, n in seen] == [8, 8, 8, 6]


SHIPPED = TINY_MODEL.parents[2] / "models" / "es-en"
VERSES = TINY_MODEL.parents[2] / "benchmarks" / "test-books.es.txt"


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHIPPED / "config.json").is_file(), reason="the shipped model is not in this checkout"
)
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_shipped_model_batch_result_equals_single_results(variant):
    """Random batches of test-book verses, as a server or a batch job would form them."""
    if not (SHIPPED / read_config(SHIPPED).variants[variant].decoder).is_file():
        pytest.skip(
            f"the shipped {variant} variant is not built in this checkout (`make fp32` rebuilds it)"
        )
    tr = Translator(SHIPPED, variant=variant)
    verses = VERSES.read_text(encoding="utf-8").splitlines()
    rng = random.Random(7)
    for beam in (1, 4):
        for _ in range(3):
            batch = rng.sample(verses, 12)
            assert batch_vs_single_differences(tr, batch, beam_size=beam, batch_size=12) == []
