"""The two host step decoders (growing past -> present cache, and the in-place preallocated cache)
must be interchangeable: same log-probabilities at every step, through row drops, beam reorders
and cache growth."""

import json

import numpy as np
import pytest

from traductor.runtime import Translator
from traductor.runtime.decoder import CachedStepDecoder, OnnxStepDecoder
from traductor.runtime.search import BeamSearch, GreedySearch

from ..conftest import TINY_MODEL


@pytest.fixture(scope="module")
def tr():
    return Translator(TINY_MODEL, variant="fp32")


@pytest.fixture(scope="module")
def ref():
    return json.loads((TINY_MODEL / "reference.json").read_text())


def _pair(tr, src, repeat, max_steps):
    ids, mask = tr._pad(src)
    return OnnxStepDecoder(tr.model, ids, mask, repeat), CachedStepDecoder(
        tr.model, ids, mask, repeat, max_steps=max_steps
    )


@pytest.mark.parametrize("max_steps", [2, 64])  # 2: the cache must grow twice on the way
def test_in_place_cache_matches_growing_cache_step_by_step(tr, ref, max_steps):
    src = ref["source_ids"][:4]
    repeat = 2
    a, b = _pair(tr, src, repeat, max_steps)
    rng = np.random.default_rng(0)
    tokens = np.full(len(src) * repeat, tr.config.special_tokens.bos_id, dtype=np.int64)
    n_sent = len(src)
    for step in range(7):
        full_a, full_b = a.step(tokens), b.step(tokens)
        np.testing.assert_allclose(full_b, full_a, atol=1e-5)
        if step == 2:  # the third sentence leaves the batch
            keep_sent = [s for s in range(n_sent) if s != 2]
            rows = np.array([s * repeat + r for s in keep_sent for r in range(repeat)])
            n_sent -= 1
        else:  # a beam reorder: inside each sentence, rows may be copied over each other
            rows = np.array(
                [
                    s * repeat + int(rng.integers(repeat))
                    for s in range(n_sent)
                    for _ in range(repeat)
                ]
            )
        a.keep(rows)
        b.keep(rows)
        assert a.rows == b.rows == rows.size
        tokens = rng.integers(4, tr.config.dims.vocab_size, rows.size)
    top_a, top_b = a.step(tokens, top_k=3), b.step(tokens, top_k=3)
    np.testing.assert_allclose(top_b[0], top_a[0], atol=1e-5)
    assert (top_a[1] == top_b[1]).all()


def test_in_place_cache_answers_any_top_k_sequence(tr, ref):
    """The in-place decoder binds its outputs once and serves a smaller top_k from the first columns
    of a larger one; every request must still match a fresh top-k of the growing-cache decoder."""
    src = ref["source_ids"][:3]
    a, b = _pair(tr, src, 1, 16)
    rng = np.random.default_rng(1)
    tokens = np.full(len(src), tr.config.special_tokens.bos_id, dtype=np.int64)
    for top_k in [2, 1, 1, 5, 3, None, 1, 4]:
        out_a, out_b = a.step(tokens, top_k=top_k), b.step(tokens, top_k=top_k)
        if top_k is None:
            np.testing.assert_allclose(out_b, out_a, atol=1e-5)
        else:
            assert out_b[1].shape == out_a[1].shape == (len(src), top_k)
            np.testing.assert_allclose(out_b[0], out_a[0], atol=1e-5)
            assert (out_b[1] == out_a[1]).all()
        tokens = rng.integers(4, tr.config.dims.vocab_size, len(src))


def test_in_place_cache_holds_what_the_graph_wrote(tr, ref):
    a, b = _pair(tr, ref["source_ids"][:3], 1, 16)
    tokens = np.full(3, tr.config.special_tokens.bos_id, dtype=np.int64)
    for _ in range(3):
        a.step(tokens)
        b.step(tokens)
    for grown, buffer in zip(a.past, b._cache):
        assert grown.shape[2] == 3
        np.testing.assert_allclose(buffer[:, :, :3], grown, atol=1e-6)
        assert not buffer[:, :, 3:].any()  # nothing written past the position


def test_searches_on_the_in_place_cache_reproduce_pytorch(tr, ref):
    src = ref["source_ids"]
    ids, mask = tr._pad(src)
    limits = [tr._limit(s) for s in src]
    st = tr.config.special_tokens
    greedy = GreedySearch(st.bos_id, st.eos_id).search(
        CachedStepDecoder(tr.model, ids, mask, max_steps=max(limits)), limits
    )
    beam = BeamSearch(st.bos_id, st.eos_id, 4, 1.0, 3).search(
        CachedStepDecoder(tr.model, ids, mask, 4, max_steps=4), limits
    )
    assert [h[0].tokens for h in greedy] == ref["greedy"]
    assert [[h.tokens for h in nb] for nb in beam] == ref["beam4"]


def test_automatic_threads_pick_a_session_by_work_and_translate_the_same(monkeypatch, ref):
    from traductor.runtime import onnx_model
    from traductor.runtime.onnx_model import (
        WIDE_DECODER_ROWS,
        WIDE_ENCODER_TOKENS,
        OnnxSeq2Seq,
        SessionSettings,
        resolve_providers,
    )

    monkeypatch.setattr(onnx_model.os, "cpu_count", lambda: 4)
    auto = OnnxSeq2Seq(TINY_MODEL, "fp32", SessionSettings(resolve_providers("cpu"), None))
    assert auto.decoder_for(WIDE_DECODER_ROWS - 1) is auto.decoder
    wide = auto.decoder_for(WIDE_DECODER_ROWS)
    assert wide is not auto.decoder and auto.decoder_for(10 * WIDE_DECODER_ROWS) is wide
    assert (
        auto.encoder_for(WIDE_ENCODER_TOKENS - 1) is auto.encoder
        and auto.encoder_for(WIDE_ENCODER_TOKENS) is not auto.encoder
    )
    fixed = OnnxSeq2Seq(TINY_MODEL, "fp32", SessionSettings(resolve_providers("cpu"), 2))
    assert (
        fixed.decoder_for(10 * WIDE_DECODER_ROWS) is fixed.decoder
        and fixed.encoder_for(10 * WIDE_ENCODER_TOKENS) is fixed.encoder
    )

    src = (
        ref["source_ids"] * 8
    )  # beam 4: more than WIDE_DECODER_ROWS rows, and a wide encoder batch
    from traductor.runtime import TranslationOptions

    opts = TranslationOptions(beam_size=4, batch_size=len(src))
    a = Translator(TINY_MODEL, variant="fp32").translate_ids(src, opts)
    b = Translator(TINY_MODEL, variant="fp32", intra_threads=1).translate_ids(src, opts)
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]


@pytest.mark.parametrize("inner", ["growing", "in-place"])
@pytest.mark.parametrize("repeat", [1, 3])
def test_lazy_row_dropping_equals_dropping_at_once(tr, ref, inner, repeat):
    """DroppingRows keeps finished sentences in the inner batch until enough are dead; the live
    rows' log-probs must be bit for bit those of a decoder that drops them at once, through drops,
    beam reorders and the final compaction."""
    from traductor.runtime.decoder import DroppingRows

    src = ref["source_ids"][:8]
    ids, mask = tr._pad(src)
    plain = OnnxStepDecoder(tr.model, ids, mask, repeat)
    make = OnnxStepDecoder if inner == "growing" else lambda *a: CachedStepDecoder(*a, max_steps=4)
    lazy = DroppingRows(
        make(tr.model, ids, mask, repeat), repeat, filler=tr.config.special_tokens.eos_id
    )
    rng = np.random.default_rng(repeat)
    live = list(range(len(src)))
    tokens = np.full(len(src) * repeat, tr.config.special_tokens.bos_id, dtype=np.int64)
    inner_sizes = []
    for step in range(9):
        a, b = plain.step(tokens), lazy.step(tokens)
        assert np.array_equal(a, b), f"step {step}"
        inner_sizes.append(lazy.inner.rows)
        if step in (1, 3, 4, 6) and len(live) > 1:  # a sentence finishes
            gone = int(rng.integers(len(live)))
            blocks = [b for b in range(len(live)) if b != gone]
            live.pop(gone)
        else:
            blocks = list(range(len(live)))
        rows = np.array(
            [blk * repeat + int(rng.integers(repeat)) for blk in blocks for _ in range(repeat)]
        )
        plain.keep(rows)
        lazy.keep(rows)
        assert lazy.rows == plain.rows == rows.size
        tokens = rng.integers(4, tr.config.dims.vocab_size, rows.size)
    top_a, top_b = plain.step(tokens, top_k=3), lazy.step(tokens, top_k=3)
    assert np.array_equal(top_a[0], top_b[0]) and np.array_equal(top_a[1], top_b[1])
    # The first finished sentence stays in the inner batch; dropping 2 of 8 (a quarter) compacts.
    assert inner_sizes[2] == 8 * repeat and inner_sizes[4] < 8 * repeat


def test_past_gathered_into_reused_buffers_equals_fresh_gathers(tr, ref):
    """Beam search gathers the growing cache into buffers the decoder reuses (from a size up): the
    log-probs are bit for bit those of fresh gathers, through beam reorders, a sentence leaving,
    two keep() calls in a row and the buffers growing with the cache."""
    src = ref["source_ids"][:4]
    ids, mask = tr._pad(src)
    repeat = 3
    fresh = OnnxStepDecoder(tr.model, ids, mask, repeat)
    fresh.POOL_FROM = 1 << 62  # never pools
    pooled = OnnxStepDecoder(tr.model, ids, mask, repeat)
    pooled.POOL_FROM = 0  # always pools (the tiny model's cache is below the real threshold)
    rng = np.random.default_rng(3)
    tokens = np.full(len(src) * repeat, tr.config.special_tokens.bos_id, dtype=np.int64)
    n_sent = len(src)
    for step in range(8):
        a, b = fresh.step(tokens), pooled.step(tokens)
        assert np.array_equal(a, b), f"step {step}"
        if step == 4:  # the second sentence leaves
            n_sent -= 1
            rows = np.array(
                [s * repeat + r for s in range(n_sent + 1) if s != 1 for r in range(repeat)]
            )
        else:
            rows = np.array(
                [
                    s * repeat + int(rng.integers(repeat))
                    for s in range(n_sent)
                    for _ in range(repeat)
                ]
            )
        for d in (fresh, pooled):
            d.keep(rows)
        if step == 2:  # a second reorder before the next step: the buffer is then source and target
            again = np.array(
                [
                    s * repeat + int(rng.integers(repeat))
                    for s in range(n_sent)
                    for _ in range(repeat)
                ]
            )
            for d in (fresh, pooled):
                d.keep(again)
        assert all(np.array_equal(p, q) for p, q in zip(fresh.past, pooled.past))
        tokens = rng.integers(4, tr.config.dims.vocab_size, n_sent * repeat)
    assert pooled._pool is not None and fresh._pool is None
    with pytest.raises(IndexError):
        pooled.keep(np.array([0, 1, n_sent * repeat]))


def test_beam_search_picks_its_cache_by_size_and_translates_the_same(ref, monkeypatch):
    """Beam search grows a small cache and keeps a large one in place (IN_PLACE_BEAM bytes a
    position): the tiny model's batch is below it; forced in place, the translations and their
    scores are the same bits."""
    import traductor.runtime.decoder as dec
    from traductor.runtime import TranslationOptions

    tr = Translator(TINY_MODEL, variant="fp32", intra_threads=1)
    src = ref["source_ids"]
    ids, mask = tr._pad(src)
    rows = len(src) * 4
    assert dec._beam_cache_bytes(tr.model, rows) < dec.IN_PLACE_BEAM
    grown = dec.make_step_decoder(tr.model, ids, mask, repeat=4, max_steps=8)
    assert isinstance(grown.inner, OnnxStepDecoder)
    opts = TranslationOptions(beam_size=4, batch_size=len(src))
    want = tr.translate_ids(src, opts)

    monkeypatch.setattr(dec, "IN_PLACE_BEAM", dec._beam_cache_bytes(tr.model, rows))
    in_place = dec.make_step_decoder(tr.model, ids, mask, repeat=4, max_steps=8)
    assert isinstance(in_place.inner, CachedStepDecoder)
    got = tr.translate_ids(src, opts)
    assert [[(h.tokens, h.score) for h in x] for x in got] == [
        [(h.tokens, h.score) for h in x] for x in want
    ]
