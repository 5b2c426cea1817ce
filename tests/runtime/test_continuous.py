"""Continuous batching: sentences that join a running beam-search batch at any step get exactly the
hypotheses they get alone."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from traductor.runtime import Translator
from traductor.runtime.continuous import ContinuousBeams, supports_rows_at_different_steps

from ..conftest import TINY_MODEL, WORDS


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(n)]


@pytest.mark.parametrize("variant", ["int8", "fp32"])
@pytest.mark.parametrize("beam_size,num_hypotheses", [(4, 1), (3, 3)])
def test_sentences_joining_at_any_step_equal_each_sentence_alone(
    variant, beam_size, num_hypotheses
):
    tr = Translator(TINY_MODEL, variant=variant, intra_threads=1)
    assert supports_rows_at_different_steps(tr.model)
    texts = _texts(30)
    options = dict(beam_size=beam_size, num_hypotheses=num_hypotheses)
    plan = tr.plan(texts, **options)
    alone = [tr.translate_ids([s], plan.options)[0] for s in plan.sources]
    engine = tr.continuous_beams(**options)
    rng = random.Random(1)
    pending, got, steps_at_join = list(range(len(plan.sources))), {}, []
    while pending or len(engine):
        if pending and (not len(engine) or rng.random() < 0.3):
            n = rng.randint(1, 4)
            steps_at_join += [s.step for s in engine.running]
            engine.add([(i, plan.sources[i], plan.limits[i]) for i in pending[:n]])
            pending = pending[n:]
        for key, hyps in engine.step():
            assert key not in got
            got[key] = hyps
    assert max(steps_at_join) > 3  # sentences joined batches well into their decoding
    for i, want in enumerate(alone):
        assert [(h.tokens, h.score, h.token_scores, h.finished) for h in got[i]] == [
            (h.tokens, h.score, h.token_scores, h.finished) for h in want
        ]
    assert [r.hypotheses for r in plan.results(got)] == [
        r.hypotheses for r in tr.translate_batch(texts, **options)
    ]
    assert len(engine) == 0 and engine.rows == 0


def test_an_old_decoder_graph_with_one_position_is_refused():
    def model(shape):
        inputs = [SimpleNamespace(name="position", shape=shape)]
        return SimpleNamespace(
            config=SimpleNamespace(io=SimpleNamespace(position="position")),
            decoder=SimpleNamespace(get_inputs=lambda: inputs),
        )

    assert not supports_rows_at_different_steps(model([1]))
    assert supports_rows_at_different_steps(model(["positions"]))
    with pytest.raises(ValueError, match="one position for all rows"):
        ContinuousBeams(model([1]), SimpleNamespace(k=4), 0)
