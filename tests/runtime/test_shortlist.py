"""The vocabulary shortlist: a sentence's candidates come from its own source, a shortlisted batch
translates exactly as its sentences alone, and without the shortlist nothing changes.

The package is the tiny test model with a shortlist added (export/shortlist.py, which needs onnx);
its lists are short (4 tokens per source token, 4 frequent ones) so that they bite.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from traductor.runtime import Translator
from traductor.runtime.package import ModelError, read_config
from traductor.runtime.shortlist import WIDTH_MULTIPLE, Shortlist

from ..conftest import TINY_MODEL, write_reverse_corpus
from .test_batch_invariance import batch_vs_single_differences, random_sources


@pytest.fixture(scope="module")
def shortlisted(tmp_path_factory):
    pytest.importorskip("onnx")
    from traductor.export.shortlist import add_shortlist

    root = tmp_path_factory.mktemp("shortlist")
    corpus = write_reverse_corpus(root / "corpus", n_train=500)
    model = root / "model"
    shutil.copytree(TINY_MODEL, model)
    add_shortlist(model, corpus / "train.tsv", per_token=4, frequent=4)
    return model


def test_package_describes_its_shortlist(shortlisted):
    config = read_config(shortlisted)
    assert config.format_version == 8
    assert (config.shortlist.per_token, config.shortlist.frequent) == (4, 4)
    manifest = json.loads((shortlisted / "manifest.json").read_text())
    assert config.shortlist.file in manifest["files"]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [None, 1, 2], ids=["auto", "t1", "t2"])
@pytest.mark.parametrize("beam", [1, 4])
def test_shortlisted_batch_result_equals_single_results(shortlisted, variant, threads, beam):
    tr = Translator(shortlisted, variant=variant, intra_threads=threads)
    assert tr.model.shortlist is not None
    texts = random_sources(seed=7 * beam + (threads or 0) + len(variant), n=40)
    for batch_size in (40, 7):
        options = dict(beam_size=beam, batch_size=batch_size, num_hypotheses=min(beam, 2))
        assert batch_vs_single_differences(tr, texts, **options) == []


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_shortlisted_beam_on_the_in_place_cache(shortlisted, variant, monkeypatch):
    """Beam search keeps a large batch's cache in place (runtime.decoder.IN_PLACE_BEAM); forced so
    on the tiny model, a batch still translates as its sentences alone, and as the growing cache
    does, scores included."""
    import traductor.runtime.decoder as dec

    tr = Translator(shortlisted, variant=variant, intra_threads=1)
    texts = random_sources(seed=11, n=24)
    options = dict(beam_size=4, num_hypotheses=2, return_scores=True)
    grown = tr.translate(texts, **options)
    monkeypatch.setattr(dec, "IN_PLACE_BEAM", 0)
    assert (
        batch_vs_single_differences(tr, texts, beam_size=4, batch_size=24, num_hypotheses=2) == []
    )
    in_place = tr.translate(texts, **options)
    assert [[(h.tokens, h.log_prob) for h in r.hypotheses] for r in in_place] == [
        [(h.tokens, h.log_prob) for h in r.hypotheses] for r in grown
    ]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("beam", [1, 4])
def test_without_shortlist_translations_equal_the_package_without_one(shortlisted, variant, beam):
    """The full-vocabulary branch of the edited decoder is the old decoder, bit for bit."""
    texts = random_sources(seed=3, n=20)
    options = dict(beam_size=beam, return_scores=True)
    off = Translator(shortlisted, variant=variant, shortlist=False).translate(texts, **options)
    old = Translator(TINY_MODEL, variant=variant).translate(texts, **options)
    assert [(r.hypotheses[0].tokens, r.hypotheses[0].log_prob) for r in off] == [
        (r.hypotheses[0].tokens, r.hypotheses[0].log_prob) for r in old
    ]


@pytest.mark.parametrize("beam", [1, 4])
def test_shortlisted_tokens_are_the_sentences_own_candidates(shortlisted, beam):
    tr = Translator(shortlisted, variant="int8")
    table = tr.model.shortlist
    texts = random_sources(seed=5, n=20)
    restricted = 0
    for text, result in zip(texts, tr.translate(texts, beam_size=beam, return_scores=True)):
        source = tr.tokenizer.encode(text).ids
        own = set(table.sentence(source).tolist())
        restricted += len(own) < tr.config.dims.output_vocab_size
        for h in result.hypotheses:
            assert set(tr.target_tokenizer.token_to_id(t) for t in h.tokens) <= own
    assert restricted == len(texts)  # the lists are shorter than the vocabulary


def test_a_sentences_candidates_do_not_depend_on_the_batch():
    table = Shortlist(
        offsets=np.array([0, 2, 3, 3, 5]), targets=np.array([7, 9, 4, 8, 9]), frequent=np.array([2])
    )
    alone = table.candidates([[0, 3]])
    batch = table.candidates([[1], [0, 3], [2]])
    assert alone.ids[alone.rows[0][alone.bias[0] == 0]].tolist() == [2, 7, 8, 9]
    assert batch.ids[batch.rows[1][batch.bias[1] == 0]].tolist() == [2, 7, 8, 9]
    assert batch.ids.tolist() == [2, 4, 7, 8, 9]  # the union, ascending
    assert batch.rows.shape[1] % WIDTH_MULTIPLE == 0
    assert np.isneginf(batch.bias[0, 2:]).all()


def test_changed_shortlist_file_is_refused(shortlisted, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(shortlisted, copy)
    with open(copy / read_config(copy).shortlist.file, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="manifest"):
        Translator(copy)


def outside_estimate(log_probs: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """What a shortlisted step should return for the listed tokens, from whole-vocabulary log-probs
    (rows, vocab): their log-probs renormalized over the list plus an estimate of the mass outside
    it, n * exp(mean + var / 2) over the outside tokens' log-probs (listed: (rows, vocab) bool)."""
    lp = log_probs.astype(np.float64)
    out = np.where(listed, np.nan, lp)
    n = (~listed).sum(1)
    mean, var = np.nanmean(out, 1), np.nanvar(out, 1)
    inside = np.log(np.where(listed, np.exp(lp), 0.0).sum(1))
    z = np.logaddexp(inside, np.where(n > 0, np.log(np.maximum(n, 1)) + mean + var / 2, -np.inf))
    return lp - z[:, None]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_shortlisted_log_probs_estimate_the_mass_outside_the_list(shortlisted, variant):
    """Beam search compares hypotheses across rows, so a row's log-probs must not depend on how
    much of the vocabulary its list holds: the step adds an estimate of the outside mass (the
    outside logits' mean and variance, exact) to the list's normalizer."""
    from traductor.runtime.decoder import OnnxStepDecoder, pad_sources

    tr = Translator(shortlisted, variant=variant)
    table, vocab = tr.model.shortlist, tr.config.dims.output_vocab_size
    texts = random_sources(seed=7, n=6)
    seqs = [tr.tokenizer.encode(t).ids + [tr.config.special_tokens.eos_id] for t in texts]
    ids, mask = pad_sources(seqs, tr.config.special_tokens.pad_id, 8)
    cands = table.candidates(seqs)
    listed = np.zeros((len(seqs), vocab), dtype=bool)
    for r, s in enumerate(seqs):
        listed[r, table.sentence(s)] = True
    full = OnnxStepDecoder(tr.model, ids, mask)
    short = OnnxStepDecoder(tr.model, ids, mask, candidates=cands)
    tokens = np.full(len(seqs), tr.config.special_tokens.bos_id, dtype=np.int64)
    for _ in range(3):
        whole = full.step(tokens)
        vals, got = short.step(tokens, top_k=cands.rows.shape[1])
        expected = outside_estimate(whole, listed)
        for r in range(len(seqs)):
            n = int(listed[r].sum())
            assert sorted(got[r, :n].tolist()) == np.flatnonzero(listed[r]).tolist()
            np.testing.assert_allclose(vals[r, :n], expected[r, got[r, :n]], atol=2e-4)
            # the estimate matters: renormalizing over the list alone gives other numbers
            assert not np.allclose(
                vals[r, :n],
                expected[r, got[r, :n]] - np.log(np.exp(expected[r, got[r, :n]]).sum()),
                atol=1e-3,
            )
        tokens = whole.argmax(1)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_the_batch_state_is_gathered_once_then_fed_back(shortlisted, variant):
    """The first step of a batch returns the head's per-batch state (the candidates' weight rows
    and the like); the step decoders feed it back, and later steps read it instead of gathering
    again, with the very numbers of a step that gathers every time."""
    from traductor.runtime.decoder import CachedStepDecoder, OnnxStepDecoder, pad_sources
    from traductor.runtime.shortlist import StepState

    tr = Translator(shortlisted, variant=variant, intra_threads=1)
    m = tr.model
    assert m.state_names and len(m.state_names) == len(m.state_out_names)
    texts = random_sources(seed=11, n=5)
    seqs = [tr.tokenizer.encode(t).ids + [tr.config.special_tokens.eos_id] for t in texts]
    ids, mask = pad_sources(seqs, tr.config.special_tokens.pad_id, 8)
    cands = m.shortlist.candidates(seqs)
    k = cands.rows.shape[1]
    fed = OnnxStepDecoder(m, ids, mask, candidates=cands)
    bound = CachedStepDecoder(m, ids, mask, max_steps=8, candidates=cands)
    past, cross = m.empty_past(len(seqs)), m.encode(ids, mask)
    tokens = np.full(len(seqs), tr.config.special_tokens.bos_id, dtype=np.int64)
    for position in range(4):
        (vals, got), past = m.step(tokens.reshape(-1, 1), position, mask, past, cross, k, cands)
        for decoder in (fed, bound):
            v, g = decoder.step(tokens, top_k=k)
            np.testing.assert_array_equal(v, vals)
            np.testing.assert_array_equal(g, got)
        state = fed._state.values
        assert state is not None and state[0].shape[1] == cands.ids.size  # (d, n) weight rows
        assert not bound._state_pending  # taken from the first step's outputs, bound as input
        if position > 0:  # given the state, a step returns it empty
            outputs = dict(zip(bound._output_order, bound._io.get_outputs()))
            assert outputs[m.state_out_names[0]].shape() == [0, 0]
        tokens = got[:, 0]
    # what is fed back is what the step reads: other weight rows, other numbers
    wrong = StepState()
    wrong.values = [np.zeros_like(state[0]), *state[1:]]
    (vals_wrong, _), _ = m.step(tokens.reshape(-1, 1), 4, mask, past, cross, k, cands, wrong)
    (vals_right, _), _ = m.step(tokens.reshape(-1, 1), 4, mask, past, cross, k, cands)
    assert not np.array_equal(vals_wrong, vals_right)
