"""A small MarianMT checkpoint directory made by the tests: SentencePiece models trained on a
synthetic corpus, a Marian-style joint vocab.json, and a random-weight MarianMTModel whose logits
are not flat (raised init_std, random final_logits_bias and LayerNorm parameters).

Needs torch, transformers and sentencepiece (the dev extra); nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

# One home for the synthetic corpus and the SentencePiece helpers: the OPUS-size model that
# benchmarks/marian_engines.py times is built from the same words and seeds.
from benchmarks.marian_model import ENGLISH, corpus, pieces, train_spm, uneven_logits

SPANISH = (
    "el la los las un una de en y que por con para sol luna casa perro gato agua fuego mar río "
    "monte pan vino rey mañana año niño corazón canción según después también árbol café está "
    "aquí allí grande pequeño"
).split()


def make_marian_dir(
    out: Path,
    *,
    separate_vocabs: bool = False,
    tags: tuple[str, ...] = (),
    activation: str = "swish",
    d_model: int = 32,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 64,
    seed: int = 0,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    vocab, target_vocab = _write_vocabularies(out, separate_vocabs, tags, seed)
    _write_tokenizer_config(out, separate_vocabs)
    dims = dict(d_model=d_model, layers=layers, heads=heads, ffn=ffn, activation=activation)
    model = _random_model(vocab, target_vocab, separate_vocabs, dims, seed)
    model.save_pretrained(str(out))
    return out


def _write_vocabularies(
    out: Path, separate_vocabs: bool, tags: tuple[str, ...], seed: int
) -> tuple[dict[str, int], dict[str, int]]:
    """SentencePiece models for both sides and Marian's vocab.json (+ target_vocab.json)."""
    work = out / "_spm"
    work.mkdir(exist_ok=True)
    src_model = train_spm(corpus(SPANISH, 3000, seed), work / "source", 200)
    tgt_model = train_spm(corpus(ENGLISH, 3000, seed + 1), work / "target", 180)
    (out / "source.spm").write_bytes(src_model.read_bytes())
    (out / "target.spm").write_bytes(tgt_model.read_bytes())
    src_pieces = [p for p in pieces(src_model) if p != "<unk>"]
    tgt_pieces = [p for p in pieces(tgt_model) if p != "<unk>"]

    def vocab_of(*lists) -> dict[str, int]:
        # Separate vocabularies keep <pad> at one id valid in both (the model has one pad_token_id).
        vocab = {"</s>": 0, "<unk>": 1, **({"<pad>": 2} if separate_vocabs else {})}
        for lst in lists:
            for p in lst:
                vocab.setdefault(p, len(vocab))
        vocab.setdefault("<pad>", len(vocab))
        return vocab

    if separate_vocabs:
        vocab, target_vocab = vocab_of(list(tags), src_pieces), vocab_of(tgt_pieces)
        (out / "target_vocab.json").write_text(
            json.dumps(target_vocab, ensure_ascii=False), encoding="utf-8"
        )
    else:
        vocab = target_vocab = vocab_of(list(tags), src_pieces, tgt_pieces)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return vocab, target_vocab


def _write_tokenizer_config(out: Path, separate_vocabs: bool) -> None:
    tok_cfg = {
        "source_lang": "es",
        "target_lang": "en",
        "separate_vocabs": separate_vocabs,
        "model_max_length": 512,
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg), encoding="utf-8")


def _random_model(
    vocab: dict[str, int],
    target_vocab: dict[str, int],
    separate_vocabs: bool,
    dims: dict,
    seed: int,
):
    """A MarianMTModel with random weights whose logits are not flat."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    cfg = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(target_vocab),
        share_encoder_decoder_embeddings=not separate_vocabs,
        d_model=dims["d_model"],
        encoder_layers=dims["layers"],
        decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"],
        decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"],
        max_position_embeddings=128,
        activation_function=dims["activation"],
        scale_embedding=True,
        pad_token_id=vocab["<pad>"],
        decoder_start_token_id=target_vocab["<pad>"],
        eos_token_id=0,
        forced_eos_token_id=0,
        init_std=0.3,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    # The end token likely enough that random sentences end on their own.
    uneven_logits(model, seed, end_bias=lambda b: b + 2.5)
    return model
