"""Word alignments from the alignment graph (torch-free; the tiny test model reverses words)."""

from __future__ import annotations

import numpy as np
import pytest

from traductor.runtime import Translator
from traductor.runtime.align import align_words, target_words, token_words

from ..conftest import TINY_MODEL

REVERSED = [
    "casa perro gato",
    "sol luna agua fuego tierra",
    "agua agua casa",
    "gato rey monte",
    "rey",
]


@pytest.fixture(scope="module")
def tr():
    return Translator(TINY_MODEL)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_the_reversing_model_aligns_on_the_anti_diagonal(variant):
    tr = Translator(TINY_MODEL, variant=variant)
    for text in REVERSED:
        r = tr.translate(text, return_alignments=True, beam_size=1)
        n = len(text.split())
        assert r.text.split() == text.split()[::-1]  # the model got these right ...
        assert r.hypotheses[0].alignment == sorted(
            (n - 1 - t, t) for t in range(n)
        )  # ... and links word to word


def test_alignments_leave_translations_unchanged(tr):
    texts = REVERSED + [
        "monte vino pan río mar cielo",
        "fuego tierra cielo mar río monte pan vino",
        "",
    ]
    for beam in (1, 4):
        plain = tr.translate(
            texts, beam_size=beam, num_hypotheses=2 if beam > 1 else 1, return_scores=True
        )
        aligned = tr.translate(
            texts, beam_size=beam, num_hypotheses=2 if beam > 1 else 1, return_alignments=True
        )
        for p, a in zip(plain, aligned):
            assert [(c.text, c.score, c.tokens) for c in p.hypotheses] == [
                (c.text, c.score, c.tokens) for c in a.hypotheses
            ]
            for c in a.hypotheses:
                assert c.alignment is not None and len(c.token_log_probs) == len(c.tokens)
                assert all(0 <= tw < len(c.text.split()) for _, tw in c.alignment)


def test_parts_of_a_long_input_keep_their_word_offsets(tr):
    """Lines are translated separately and rejoined: word indices count across the whole text."""
    first, second = "casa perro gato", "sol luna agua fuego tierra"
    whole = tr.translate(f"{first}\n{second}", return_alignments=True, beam_size=1)
    a = tr.translate(first, return_alignments=True, beam_size=1).hypotheses[0]
    b = tr.translate(second, return_alignments=True, beam_size=1).hypotheses[0]
    shift_src, shift_tgt = len(first.split()), len(a.text.split())
    assert whole.hypotheses[0].alignment == a.alignment + [
        (s + shift_src, t + shift_tgt) for s, t in b.alignment
    ]


def test_word_mapping_helpers(tr):
    text = "  casa   perro gato "
    enc = tr.tokenizer.encode(text, add_special_tokens=False)
    words = token_words(enc.offsets, text)
    assert words == sorted(words) and words[0] == 0 and words[-1] == 2
    ids = tr.tokenizer.encode("gato perro casa", add_special_tokens=False).ids
    assert target_words(tr.target_tokenizer, ids)[-1] == 2
    attn = np.array(
        [[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]]
    )  # two target tokens, three source tokens (last = end token)
    assert align_words(attn, [0, 1, -1], [0, 1]) == [(0, 1), (1, 0)]
    assert align_words(attn, [-1, -1, -1], [0, 1]) == []


def test_return_alignments_must_be_a_bool(tr):
    with pytest.raises(ValueError, match="return_alignments"):
        tr.translate("sol", return_alignments="yes")


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("beam", [1, 4])
def test_alignments_of_a_batch_equal_each_sentence_alone(variant, threads, beam):
    """The alignment graph runs over batches of sentences (sorted by length, padded): each
    sentence's alignments and log-probs are those it gets alone, and its attention weights over its
    own positions are bit for bit those of a run over that sentence alone."""
    from .test_batch_invariance import random_sources

    tr = Translator(TINY_MODEL, variant=variant, intra_threads=threads)
    texts = random_sources(seed=31 + beam + threads, n=30) + ["casa perro gato\nsol luna", ""]
    n = min(beam, 3)
    for batch_size in (32, 5):
        options = dict(beam_size=beam, num_hypotheses=n, batch_size=batch_size)
        together = tr.translate_batch(texts, return_alignments=True, **options)
        for text, r in zip(texts, together):
            alone = tr.translate_batch([text], return_alignments=True, **options)[0]
            got = [(c.text, c.score, c.alignment, c.token_log_probs) for c in r.hypotheses]
            want = [(c.text, c.score, c.alignment, c.token_log_probs) for c in alone.hypotheses]
            assert got == want, text

    # The weights themselves: record every alignment-graph run of a batched call (on the decoding
    # batch's encoder output), and compare each row's own block with that row run alone. Greedy
    # reads its alignments off the decoding: without it (packages before format 7) it runs the
    # graph too.
    runs = []
    original = tr.model.alignment_weights
    tr.model.step_attention = None

    def spy(ids, mask, target, cross=None):  # cross: the decoding's encoder output
        w = original(ids, mask, target, cross)
        assert cross is not None  # the sources are not encoded a second time
        runs.append((ids, mask, target, w))
        return w

    tr.model.alignment_weights = spy
    try:
        tr.translate_batch(texts, return_alignments=True, beam_size=beam, batch_size=8)
    finally:
        del tr.model.alignment_weights
    assert len(runs) > 1 and any(len({int(m.sum()) for m in mask}) > 1 for _, mask, _, _ in runs)
    eos = tr.config.special_tokens.eos_id
    for ids, mask, target, w in runs:
        for r in range(ids.shape[0]):
            src = int(mask[r].sum())
            tgt = (
                int(np.flatnonzero(target[r] != eos).max()) + 1
            )  # the start token, then the tokens
            own_ids, own_mask = tr._pad([ids[r, :src].tolist()])
            alone = original(own_ids, own_mask, target[r : r + 1, :tgt])
            assert np.array_equal(alone[0, :, :, :tgt, :src], w[r, :, :, :tgt, :src])


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_greedy_reads_the_alignment_graphs_attention_off_its_own_steps(variant):
    """The decoder graph outputs the alignment layer's cross-attention at each step: a greedy
    search keeps it, and it is the alignment graph's over the same tokens (rows: the step that
    predicts each token), so the alignments are the graph's without a second pass. In fp32 the
    two agree to float rounding; int8 graphs quantize differently (the step graph's fused
    self-attention, the alignment graph's int8 embedding table), which moves weights by up to ~0.05
    here (so only the word alignments are compared) and, on the shipped model, alignments rarely
    (docs/alignments.md)."""
    from traductor.runtime.translator import TranslationOptions

    from .test_batch_invariance import random_sources

    tr = Translator(TINY_MODEL, variant=variant)
    assert tr.model.step_attention == "alignment_attention"
    texts = REVERSED + random_sources(seed=5, n=12)
    seqs = [s.ids for s in tr._segments(texts, TranslationOptions())]
    hyps = [h for (h,) in tr._search(seqs, TranslationOptions(beam_size=1), attention=True)]
    layer = tr.config.alignment.layer
    for ids, h in zip(seqs, hyps):
        recorded = np.stack(h.attention)  # (tokens, heads, src_len)
        src_ids, mask = tr._pad([ids])
        target = np.array([[tr.config.special_tokens.bos_id, *h.tokens]], dtype=np.int64)
        graph = tr.model.alignment_weights(src_ids, mask, target)[0, layer]  # (heads, tgt, src)
        graph = graph.transpose(1, 0, 2)[
            : len(h.tokens), :, : len(ids)
        ]  # (the end token's row off)
        assert recorded.shape == (len(h.tokens), *graph.shape[1:2], recorded.shape[2])
        np.testing.assert_allclose(recorded.sum(axis=2), 1.0, atol=1e-5)
        assert np.all(recorded[:, :, len(ids) :] == 0)  # padding gets no attention
        if variant == "fp32":
            np.testing.assert_allclose(recorded[:, :, : len(ids)], graph, atol=1e-5)

    recorded = tr.translate_batch(texts, return_alignments=True, beam_size=1)
    tr.model.step_attention = None  # as a package without the output: the alignment graph
    graph = tr.translate_batch(texts, return_alignments=True, beam_size=1)
    assert [r.hypotheses[0].alignment for r in recorded] == [
        r.hypotheses[0].alignment for r in graph
    ]


def _prefix_words(tokenizer, ids):
    """The definition target_words keeps: each token's prefix decoded, its last word's index."""
    return [max(len(tokenizer.decode(ids[: i + 1]).split()) - 1, 0) for i in range(len(ids))]


@pytest.mark.parametrize("model", ["tiny", "shipped"])
def test_target_words_from_pieces_equal_decoded_prefixes(model):
    """The one-pass word count over the pieces' text gives what decoding every prefix gives, on
    random token sequences with lone word markers, special and byte tokens mixed in (those send a
    sequence to the prefix decodes)."""
    import random

    from tokenizers import Tokenizer

    from traductor.runtime.align import _piece_words
    from traductor.runtime.models import resolve_model

    path = (TINY_MODEL if model == "tiny" else resolve_model(None)) / "tokenizer.json"
    tok = Tokenizer.from_file(str(path))
    table = _piece_words(tok)
    assert table is not None  # the marker-only decoder: the one-pass path is the one tested
    plain = sorted(table)
    odd = sorted(set(range(tok.get_vocab_size())) - set(plain))[:40]
    lone = [i for i in plain if tok.id_to_token(i) == "\u2581"]
    rng = random.Random(0)
    for _ in range(3000):
        ids = [
            rng.choice(plain) if rng.random() < 0.85 else rng.choice(lone + odd)
            for _ in range(rng.randint(0, 30))
        ]
        assert target_words(tok, ids) == _prefix_words(tok, ids), ids
