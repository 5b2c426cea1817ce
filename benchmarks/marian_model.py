"""The model marian_engines.py times: a random-weight MarianMT directory at OPUS-MT's size.

Imported by marian_engines.py (a sibling on its sys.path); it measures nothing and has no command
line. Only the standard library is imported at the top, so marian_engines.py's children can import
it in the Optimum venv too. Building needs torch, transformers and sentencepiece.

The synthetic corpus and the SentencePiece helpers live here and the test fixture
(tests/marian_fixture.py) imports them, so the benchmark never imports the tests: the same words
and seeds give the same target SentencePiece model.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

VOCAB_SIZE = 58_101  # opus-mt-es-en's
DIMS = dict(d_model=512, layers=6, heads=8, ffn=2048, activation="swish")
EOS_BIAS = -100.0
# tests/marian_fixture.py uses init_std 0.3 at d_model 32; the same regime at d_model 512 is
# 0.3 * sqrt(32 / 512) = 0.075 (q/k, FFN and logit magnitudes as in the fixture). 0.3 itself at
# d_model 512 makes the random net chaotic: its fp32 log-probs differ from fp64 by 0.16, so no two
# engines agree and traductor's converter refuses it (fp32 log-probs 5.6e-2 from PyTorch); at 0.075
# fp32 is within 1e-5 of fp64.
INIT_STD = 0.3 * (32 / DIMS["d_model"]) ** 0.5
SPANISH_VERSES = Path(__file__).resolve().parent / "test-books.es.txt"

ENGLISH = (
    "the a of in and that by with for sun moon house dog cat water fire sea river mount bread wine "
    "king tomorrow year child heart song according after also tree coffee is here there big small"
).split()
EXTRA = ["東京", "日本語", "😀", "naïve", "Straße", "123", "4.5", "¿", "¡", "?", "!", ",", ".", "—"]


def build_marian(out: Path, seed: int = 0) -> Path:
    """A random-weight MarianMT directory at OPUS-MT's size (see marian_engines.py's docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    vocab = _write_vocabularies(out, seed)
    model = _random_model(vocab["<pad>"], seed)
    model.save_pretrained(str(out))
    (out / "BUILT").write_text("ok\n")
    return out


def _write_vocabularies(out: Path, seed: int) -> dict[str, int]:
    """source.spm (trained on the test books), target.spm (the synthetic English corpus), and a
    joint vocab.json padded with placeholder pieces to VOCAB_SIZE, `<pad>` last as in OPUS-MT."""
    work = out / "_spm"
    work.mkdir(exist_ok=True)
    spanish = [
        line for line in SPANISH_VERSES.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    src_model = train_spm(spanish, work / "source", 2000)
    tgt_model = train_spm(corpus(ENGLISH, 3000, seed + 1), work / "target", 180)
    shutil.copyfile(src_model, out / "source.spm")
    shutil.copyfile(tgt_model, out / "target.spm")
    vocab = {"</s>": 0, "<unk>": 1}
    for p in pieces(src_model) + pieces(tgt_model):
        if p != "<unk>":
            vocab.setdefault(p, len(vocab))
    n = 0
    while len(vocab) < VOCAB_SIZE - 1:  # placeholders: no SentencePiece model ever produces them
        vocab.setdefault(f"\u2581zzph{n:05d}", len(vocab))
        n += 1
    vocab["<pad>"] = len(vocab)  # last, as in OPUS-MT (CTranslate2's Marian loader drops it)
    assert len(vocab) == VOCAB_SIZE
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok_cfg = {
        "source_lang": "es",
        "target_lang": "en",
        "separate_vocabs": False,
        "model_max_length": 512,
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "tokenizer_class": "MarianTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg), encoding="utf-8")
    shutil.rmtree(work)
    return vocab


def _random_model(pad: int, seed: int):
    """MarianMTModel at DIMS with logits that are not flat (perturbed LayerNorms, random
    final_logits_bias), a zero pad embedding, and an end token that never wins (EOS_BIAS)."""
    import torch
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    d = DIMS
    cfg = MarianConfig(
        vocab_size=VOCAB_SIZE,
        decoder_vocab_size=VOCAB_SIZE,
        share_encoder_decoder_embeddings=True,
        d_model=d["d_model"],
        encoder_layers=d["layers"],
        decoder_layers=d["layers"],
        encoder_attention_heads=d["heads"],
        decoder_attention_heads=d["heads"],
        encoder_ffn_dim=d["ffn"],
        decoder_ffn_dim=d["ffn"],
        max_position_embeddings=512,
        activation_function=d["activation"],
        scale_embedding=True,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        init_std=INIT_STD,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    # The end token never wins: every engine decodes its token limit.
    uneven_logits(model, seed, end_bias=lambda _: EOS_BIAS)
    with torch.no_grad():
        model.get_input_embeddings().weight[pad].zero_()
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]],
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        max_length=512,
        num_beams=4,
        pad_token_id=pad,
    )
    return model


def uneven_logits(model, seed: int, end_bias) -> None:
    """Make a random MarianMTModel's logits uneven: a random final_logits_bias (the end token's
    entry replaced by end_bias(its random value)) and LayerNorm weights and biases moved by
    N(0, 0.3). Shared by this model and the test fixture's."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bias = torch.randn(model.final_logits_bias.shape, generator=g)
        bias[0, 0] = end_bias(bias[0, 0])
        model.final_logits_bias.copy_(bias)
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(
                    (1.0 if name.endswith("weight") else 0.0)
                    + 0.3 * torch.randn(p.shape, generator=g)
                )


def corpus(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        ws = [
            rng.choice(words + EXTRA if rng.random() < 0.1 else words)
            for _ in range(rng.randint(3, 12))
        ]
        line = " ".join(ws)
        lines.append(line[0].upper() + line[1:] + rng.choice([".", "?", "!", ""]))
    return lines


def train_spm(lines: list[str], prefix: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    text = prefix.with_suffix(".txt")
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def pieces(model_file: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
