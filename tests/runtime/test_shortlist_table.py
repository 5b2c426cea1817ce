"""The shortlist's table builders (export/shortlist.py) on tiny corpora made here: IBM Model 1
gives a word's translation where sentence co-occurrence cannot tell it from its neighbours, lists a
source token's own id, and the package's own translations can join the corpus."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ..conftest import TINY_MODEL, write_reverse_corpus

pytest.importorskip("onnx")
from traductor.export.shortlist import (  # noqa: E402
    add_shortlist,
    build_table,
    model_translations,
    translation_probabilities,
)

# Source word 10 always comes with 11; 11 also comes alone. Targets: 20 translates 10, 19
# translates 11, 5 is a frequent word every sentence holds.
A_WITH_B = ([10, 11], [20, 19, 5])
B_ALONE = ([11], [19, 5])
CORPUS = [A_WITH_B] * 20 + [B_ALONE] * 20
VOCAB = 40


def _lists(table, source_id):
    return table.targets[table.offsets[source_id] : table.offsets[source_id + 1]].tolist()


def test_model1_probabilities_sum_to_one_per_source_token():
    sources, targets = zip(*CORPUS)
    keys, p = translation_probabilities(list(sources), list(targets), VOCAB, VOCAB)
    totals = np.bincount(keys // VOCAB, weights=p)
    assert np.allclose(totals[totals > 0], 1.0)


def test_alignment_ranks_a_words_translation_above_its_neighbours():
    """Co-occurrence sees 19 and 20 in every sentence holding 10 (a tie, to the lower id); Model 1
    explains 19 by 11, which also comes alone, and gives 10 its own translation."""
    sources, targets = map(list, zip(*CORPUS))
    options = dict(per_token=1, frequent=1)  # 5, the most frequent, is everyone's
    aligned = build_table(sources, targets, VOCAB, VOCAB, method="alignment", **options)
    counted = build_table(sources, targets, VOCAB, VOCAB, method="cooccurrence", **options)
    assert aligned.frequent.tolist() == [5]
    assert _lists(aligned, 10) == [10, 20]  # its translation, and itself (a copy)
    assert _lists(aligned, 11) == [11, 19]
    assert _lists(counted, 10) == [19]  # the neighbour's translation
    keys, p = translation_probabilities(sources, targets, VOCAB, VOCAB)
    prob = dict(zip(keys.tolist(), p.tolist()))
    assert prob[10 * VOCAB + 20] > 5 * prob[10 * VOCAB + 19]  # co-occurrence: equal


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="method"):
        build_table([[1]], [[2]], 4, 4, method="dice")


def test_model_translations_are_the_models_own_tokens(tmp_path):
    from traductor.runtime import Translator

    corpus = write_reverse_corpus(tmp_path / "corpus", n_train=30, n_dev=1)
    sources, outputs = model_translations(TINY_MODEL, corpus / "train.tsv")
    tr = Translator(TINY_MODEL, shortlist=False)
    texts = [line.split("\t")[0] for line in (corpus / "train.tsv").read_text().splitlines()]
    results = tr.translate(texts, beam_size=1, return_scores=True)
    assert len(outputs) == len(texts)
    assert sources == [tr.tokenizer.encode(t).ids for t in texts]
    assert [[tr.target_tokenizer.id_to_token(i) for i in o] for o in outputs] == [
        r.hypotheses[0].tokens for r in results
    ]


def test_self_translated_table_lists_what_the_model_said(tmp_path):
    """Aligned together with the references, the model's own output tokens of a corpus sentence
    are among that sentence's candidates when the lists are long enough to hold them."""
    corpus = write_reverse_corpus(tmp_path / "corpus", n_train=60, n_dev=1)
    model = tmp_path / "model"
    shutil.copytree(TINY_MODEL, model)
    sources, outputs = model_translations(model, corpus / "train.tsv")
    table = add_shortlist(
        model, corpus / "train.tsv", per_token=50, frequent=4, self_translations=True
    )
    for s, o in zip(sources, outputs):
        assert set(o) <= set(table.sentence(s).tolist())
    from traductor.runtime.package import read_config

    assert "greedy translations" in read_config(model).shortlist.corpus
