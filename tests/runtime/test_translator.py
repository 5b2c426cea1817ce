"""The torch-free runtime against PyTorch's reference outputs, batching, n-best and streaming."""

import json
import random

import pytest

from traductor.runtime import TranslationResult, Translator

from ..conftest import TINY_MODEL, WORDS

REF = json.loads((TINY_MODEL / "reference.json").read_text())


@pytest.fixture(scope="module")
def fp32():
    return Translator(TINY_MODEL, variant="fp32", intra_threads=1)


@pytest.fixture(scope="module")
def int8():
    return Translator(TINY_MODEL, intra_threads=1)


def _opts(**kw):
    from traductor.runtime import TranslationOptions

    return TranslationOptions(**kw)


def test_greedy_equals_pytorch_greedy_token_for_token(fp32):
    hyps = fp32.translate_ids(REF["source_ids"], _opts(beam_size=1))
    assert [h[0].tokens for h in hyps] == REF["greedy"]


def test_beam_search_equals_pytorch_beam_search(fp32):
    hyps = fp32.translate_ids(REF["source_ids"], _opts(beam_size=4, num_hypotheses=3))
    assert [[h.tokens for h in nbest] for nbest in hyps] == REF["beam4"]
    for nbest, ref_scores in zip(hyps, REF["beam4_scores"]):
        assert [h.score for h in nbest] == pytest.approx(ref_scores, abs=1e-4)


def test_default_variant_is_int8_and_translates_the_reversal(int8):
    assert int8.variant == "int8"
    assert int8.translate("casa perro gato") == "gato perro casa"


def test_batch_result_equals_single_results(fp32):
    rng = random.Random(7)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(40)]
    singles = {t: fp32.translate(t, beam_size=1) for t in texts}
    singles_beam = {t: fp32.translate(t, beam_size=3) for t in texts[:15]}
    for _ in range(6):
        batch = rng.sample(texts, rng.randint(2, 20))
        assert fp32.translate(batch, beam_size=1, batch_size=rng.randint(1, 16)) == [
            singles[t] for t in batch
        ]
        beam_batch = [t for t in batch if t in singles_beam]
        if beam_batch:
            assert fp32.translate(beam_batch, beam_size=3, batch_size=rng.randint(1, 8)) == [
                singles_beam[t] for t in beam_batch
            ]


def test_nbest_results_carry_sorted_scores_and_tokens(fp32):
    result = fp32.translate("sol luna agua", beam_size=4, num_hypotheses=3)
    assert isinstance(result, TranslationResult) and len(result.hypotheses) == 3
    scores = [h.score for h in result.hypotheses]
    assert scores == sorted(scores, reverse=True)
    assert result.text == result.hypotheses[0].text
    assert "".join(result.hypotheses[0].tokens).replace("▁", " ").strip() == result.text
    assert len({h.text for h in result.hypotheses}) == 3


def test_return_scores_gives_result_objects_for_lists(fp32):
    results = fp32.translate(["casa", "sol luna"], return_scores=True, beam_size=1)
    assert [type(r) for r in results] == [TranslationResult, TranslationResult]
    assert all(r.hypotheses[0].log_prob <= 0 for r in results)


def test_stream_yields_the_greedy_translation_piece_by_piece(fp32):
    text = "fuego tierra cielo mar río"
    pieces = list(fp32.translate_stream(text))
    assert len(pieces) > 1
    assert "".join(pieces) == fp32.translate(text, beam_size=1)


def test_long_text_is_split_into_sentences_and_rejoined(fp32):
    sentence = "Casa perro gato sol luna."
    text = " ".join([sentence] * 30)  # far over max_len=64 subwords
    out = fp32.translate(text, beam_size=1)
    assert out == " ".join([fp32.translate(sentence, beam_size=1)] * 30)


def test_newlines_are_kept(fp32):
    out = fp32.translate("casa perro\nsol luna", beam_size=1)
    assert out.split("\n") == [
        fp32.translate("casa perro", beam_size=1),
        fp32.translate("sol luna", beam_size=1),
    ]
