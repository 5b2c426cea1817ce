"""`traductor convert marian`: random-weight MarianMT checkpoints made here, converted and checked
token for token against transformers, through the torch-free runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from traductor.export import marian  # noqa: E402
from traductor.export.gates import ExportError  # noqa: E402
from traductor.export.package import PackageOptions  # noqa: E402
from traductor.runtime import Translator  # noqa: E402
from traductor.runtime.package import FORMAT_VERSION, read_config  # noqa: E402

from .marian_fixture import make_marian_dir  # noqa: E402

SENTENCES = [
    "el sol y la luna",
    "Mañana el niño está aquí.",
    "¿Dónde está el perro grande?",
    "casa de pan y vino, según el rey",
    "El árbol 東京 😀 naïve",
    "después",
]


def convert(src: Path, out: Path, dev_sentences: int = 12) -> int:
    """`traductor convert marian SRC --out OUT` with the options built directly."""
    options = marian.ConvertOptions(str(src), PackageOptions(out), dev_sentences=dev_sentences)
    return marian.convert_marian(options)


@pytest.fixture(scope="session")
def marian_shared(tmp_path_factory) -> Path:
    return make_marian_dir(
        tmp_path_factory.mktemp("marian") / "opus-mt-es-mul", tags=(">>en<<", ">>fr<<")
    )


@pytest.fixture(scope="session")
def marian_separate(tmp_path_factory) -> Path:
    return make_marian_dir(
        tmp_path_factory.mktemp("marian") / "opus-mt-es-en",
        separate_vocabs=True,
        activation="gelu",
        seed=1,
    )


@pytest.fixture(scope="session")
def converted_shared(marian_shared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "shared"
    assert convert(marian_shared, out) == 0
    return out


def _hf(src_dir: Path):
    from transformers import MarianMTModel, MarianTokenizer

    return MarianMTModel.from_pretrained(str(src_dir)).eval(), MarianTokenizer.from_pretrained(
        str(src_dir)
    )


def _generate(model, ids: list[int], beam: int, max_new: int) -> list[int]:
    with torch.no_grad():
        seq = model.generate(
            input_ids=torch.tensor([ids]),
            num_beams=beam,
            do_sample=False,
            max_new_tokens=max_new,
            bad_words_ids=[[model.config.pad_token_id]],
            early_stopping=False,
        )[0].tolist()[1:]
    return seq[: seq.index(model.config.eos_token_id)] if model.config.eos_token_id in seq else seq


def test_package_format_and_tokenizers(converted_shared, marian_shared):
    cfg = read_config(converted_shared)
    assert cfg.format_version == FORMAT_VERSION
    assert cfg.tokenizers.source != cfg.tokenizers.target
    assert cfg.language_tags == {"en": ">>en<<", "fr": ">>fr<<"}
    assert cfg.decoding.min_length == 0 and cfg.special_tokens.bos_id == cfg.special_tokens.pad_id
    assert set(cfg.variants) == {"fp32"}
    card = (converted_shared / "MODEL_CARD.md").read_text()
    assert "Converted from" in card and "generate()" in card


@pytest.mark.parametrize("beam", [1, 4])
def test_runtime_tokens_equal_transformers_generate(converted_shared, marian_shared, beam):
    """The torch-free runtime, from text: source ids as MarianTokenizer makes them, then the same
    tokens and the same decoded text as generate() + MarianTokenizer.decode."""
    model, tok = _hf(marian_shared)
    tr = Translator(converted_shared, variant="fp32")
    for lang in ("en", "fr"):
        results = tr.translate(
            SENTENCES, beam_size=beam, target_language=lang, return_scores=True, max_length=40
        )
        for text, r in zip(SENTENCES, results):
            ids = tok(f">>{lang}<< {text}").input_ids
            want = _generate(model, ids, beam, 41)
            got = [tr.target_tokenizer.token_to_id(t) for t in r.hypotheses[0].tokens]
            assert got == want, (lang, text)
            assert r.text == tok.decode(want, skip_special_tokens=True)


def test_separate_vocabularies_and_gelu_convert(marian_separate, tmp_path):
    out = tmp_path / "sep"
    assert convert(marian_separate, out) == 0
    cfg = read_config(out)
    assert (
        cfg.dims.target_vocab_size is not None and cfg.dims.target_vocab_size != cfg.dims.vocab_size
    )
    assert not cfg.language_tags and (cfg.source_language, cfg.target_language) == ("es", "en")
    model, tok = _hf(marian_separate)
    tr = Translator(out)
    with pytest.raises(ValueError, match="translates into en only"):
        tr.translate("sol", target_language="fr")
    assert tr.variant == "fp32"  # converted without --int8
    got = tr.translate(SENTENCES, beam_size=1, max_length=30)
    want = [
        tok.decode(_generate(model, tok(s).input_ids, 1, 31), skip_special_tokens=True)
        for s in SENTENCES
    ]
    assert got == want


def test_multi_target_models_need_a_target_language(converted_shared):
    tr = Translator(converted_shared)
    with pytest.raises(ValueError, match="several languages.*en, fr"):
        tr.translate("el sol")
    with pytest.raises(ValueError, match="offers en, fr"):
        tr.translate("el sol", target_language="de")


@pytest.mark.parametrize(
    "mutation", ["interleaved_positions", "no_logits_bias", "no_embedding_scale"]
)
def test_a_wrong_architecture_fact_fails_the_gates(marian_shared, tmp_path, monkeypatch, mutation):
    original = marian.map_weights

    def mutated(hf_model, cfg):
        import dataclasses

        if mutation == "interleaved_positions":
            cfg = dataclasses.replace(cfg, positions="interleaved")
        elif mutation == "no_embedding_scale":
            cfg = dataclasses.replace(cfg, scale_embedding=not cfg.scale_embedding)
        model = original(hf_model, cfg)
        if mutation == "no_logits_bias":
            with torch.no_grad():
                model.final_logits_bias.zero_()
        return model

    monkeypatch.setattr(marian, "map_weights", mutated)
    out = tmp_path / "bad"
    with pytest.raises(ExportError, match="transformers"):
        convert(marian_shared, out, dev_sentences=4)
    assert not out.exists()


def test_bad_sources_get_clear_errors(tmp_path, marian_shared, monkeypatch):
    with pytest.raises(ExportError, match="neither a model directory nor a hub id"):
        marian.fetch(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="missing config.json, source.spm"):
        marian.load_marian(tmp_path / "empty")
    other = tmp_path / "bert"
    other.mkdir()
    for f in ("source.spm", "target.spm", "vocab.json", "model.safetensors"):
        (other / f).write_bytes((marian_shared / f).read_bytes())
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ExportError, match="'bert' model"):
        marian.load_marian(other)

    import huggingface_hub

    def offline(**kw):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ExportError, match="could not download Helsinki-NLP/opus-mt-xx-yy"):
        marian.fetch("Helsinki-NLP/opus-mt-xx-yy")


def test_existing_output_needs_force(converted_shared, marian_shared):
    with pytest.raises(ExportError, match="already exists"):
        convert(marian_shared, converted_shared)


def test_cli_arguments_become_convert_options(marian_shared, tmp_path, monkeypatch):
    """`main(args)` only builds the options: every flag lands in its field."""
    from traductor.cli import build_parser

    seen = []
    monkeypatch.setattr(marian, "convert_marian", lambda options: seen.append(options) or 0)
    argv = ["convert", "marian", str(marian_shared), "--out", str(tmp_path / "o"), "--int8"]
    argv += ["--dev-sentences", "3", "--source-lang", "es", "--beam", "2", "--accept-mismatch"]
    assert marian.main(build_parser().parse_args(argv)) == 0
    (options,) = seen
    assert options == marian.ConvertOptions(
        str(marian_shared),
        PackageOptions(tmp_path / "o", int8=True, beam=2, accept_mismatch=True),
        dev_sentences=3,
        source_lang="es",
    )
    with pytest.raises(ValueError, match="invalid dev_sentences=0"):
        marian.ConvertOptions("x", PackageOptions(tmp_path), dev_sentences=0)


def test_a_shortlist_of_the_whole_vocabulary_changes_nothing(converted_shared, tmp_path):
    """A converted decoder adds -inf at <pad> after its softmax; the shortlisted head must do the
    same. A table that lists every token (<pad> too) leaves nothing outside the list, so the
    translations, their scores and the whole n-best equal those without the shortlist."""
    import shutil

    import numpy as np

    from traductor.export.shortlist import install_table
    from traductor.runtime.shortlist import Shortlist

    pkg = tmp_path / "listed"
    shutil.copytree(converted_shared, pkg)
    config = read_config(pkg)
    vocab = config.dims.output_vocab_size
    table = Shortlist(np.zeros(config.dims.vocab_size + 1), np.zeros(0), np.arange(vocab))
    install_table(pkg, table, 0, vocab, "every token")
    pad = config.special_tokens.pad_id
    for variant in [v for v in ("fp32", "int8") if v in config.variants]:
        with_list = Translator(pkg, variant=variant)
        without = Translator(pkg, variant=variant, shortlist=False)
        for beam in (1, 4):
            options = dict(
                target_language="en",
                beam_size=beam,
                num_hypotheses=beam,
                return_scores=True,
                max_length=12,
            )
            a = with_list.translate(SENTENCES, **options)
            b = without.translate(SENTENCES, **options)
            for x, y in zip(a, b):
                assert [h.tokens for h in x.hypotheses] == [h.tokens for h in y.hypotheses]
                for hx, hy in zip(x.hypotheses, y.hypotheses):
                    assert hx.log_prob == pytest.approx(hy.log_prob, abs=1e-4)
                    assert pad not in [with_list.target_tokenizer.token_to_id(t) for t in hx.tokens]
        # one step, every listed token: <pad> is -inf, as the whole-vocabulary head makes it
        from traductor.runtime.decoder import OnnxStepDecoder

        seqs = with_list.plan(SENTENCES[:2], target_language="en").sources
        ids, mask = with_list._pad(seqs)
        cands = with_list.model.shortlist.candidates(seqs)
        step = OnnxStepDecoder(with_list.model, ids, mask, candidates=cands)
        bos = np.full(len(seqs), config.special_tokens.bos_id, dtype=np.int64)
        vals, got = step.step(bos, top_k=cands.rows.shape[1])
        vals, got = vals[:, :vocab], got[:, :vocab]  # every token once, then the row's padding
        assert (np.sort(got, axis=1) == np.arange(vocab)).all()
        assert np.isneginf(vals[got == pad]).all() and np.isfinite(vals[got != pad]).all()


def test_a_shortlist_on_separate_vocabularies(marian_separate, tmp_path):
    """A converted model with its own target vocabulary: the table maps source-vocabulary ids to
    target-vocabulary ids, built by `traductor shortlist`'s code from a corpus; each sentence
    translates the same alone and in a batch, only ever with tokens of its own list."""
    import numpy as np

    from traductor.export.shortlist import add_shortlist

    pkg = tmp_path / "sep"
    assert convert(marian_separate, pkg) == 0
    corpus = tmp_path / "pairs.tsv"
    english = ["the sun and the moon", "tomorrow the child is here", "where is the big dog"]
    corpus.write_text(
        "".join(f"{s}\t{t}\n" for s, t in zip(SENTENCES, english * 2)), encoding="utf-8"
    )
    table = add_shortlist(pkg, corpus, per_token=5, frequent=5)
    config = read_config(pkg)
    assert config.shortlist is not None and config.shortlist.per_token == 5
    assert len(table.offsets) == config.dims.vocab_size + 1
    target_vocab = config.dims.output_vocab_size
    assert target_vocab == config.dims.target_vocab_size != config.dims.vocab_size
    assert table.targets.max() < target_vocab and table.frequent.max() < target_vocab

    tr = Translator(pkg)
    whole = Translator(pkg, shortlist=False)
    for beam in (1, 4):
        together = tr.translate(SENTENCES, beam_size=beam, max_length=20, return_scores=True)
        alone = [
            tr.translate([s], beam_size=beam, max_length=20, return_scores=True)[0]
            for s in SENTENCES
        ]
        assert [r.text for r in together] == [r.text for r in alone]
        plan = tr.plan(SENTENCES, beam_size=beam)
        lists = tr.model.shortlist.candidates(plan.sources)
        for row, r in enumerate(together):
            own = set(lists.ids[lists.rows[row][np.isfinite(lists.bias[row])]].tolist())
            got = {tr.target_tokenizer.token_to_id(t) for t in r.hypotheses[0].tokens}
            assert got <= own, (SENTENCES[row], got - own)
        # the lists are small: the whole vocabulary must translate some sentence otherwise
        if beam == 1:
            assert [r.text for r in together] != whole.translate(SENTENCES, max_length=20)
