"""`traductor explain`: what the model looked at. Writes, for one input text:

- translation.txt: the translation;
- attention.png: a heatmap of cross-attention, source words x target words, labelled;
- explain.json: the words, the alignment (source_word_index, target_word_index), each target token
  with its log-probability, and the word-level attention matrix.

The attention is the alignment graph's (config.json `alignment`: one decoder layer, mean of heads),
the same that `Translator.translate(..., return_alignments=True)` uses. Needs matplotlib for the PNG
(the explain extra); the runtime core does not import this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .align import align_words, target_words, word_attention
from .package import InputError
from .translator import Translator


def explain(
    tr: Translator, text: str, beam_size: int | None = None, target_language: str | None = None
) -> dict:
    """Translate `text` and collect the word attention of every sentence into one matrix."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("explain needs a non-empty text")
    opts = tr._options(
        {"return_alignments": True, "beam_size": beam_size, "target_language": target_language}
    )
    segments = [s for s in tr._segments([text], opts) if s.ids]
    hyps = [h[0] for h in tr.translate_ids([s.ids for s in segments], opts)]
    a, st = tr.config.alignment, tr.config.special_tokens
    src_words = text.split()
    blocks, tokens, log_probs, tgt_before, translation = [], [], [], 0, []
    for seg, h in zip(segments, hyps):
        target = np.array([[st.bos_id] + h.tokens], dtype=np.int64)
        ids, mask = tr._pad([seg.ids])
        w = tr.model.alignment_weights(ids, mask, target)[0]
        heads = a.heads if a.heads is not None else list(range(w.shape[1]))
        attn = w[a.layer][heads].mean(axis=0)[: len(h.tokens), : len(seg.ids)]
        tw = target_words(tr.target_tokenizer, h.tokens)
        part = tr.target_tokenizer.decode(h.tokens)
        blocks.append(
            (tgt_before, word_attention(attn, seg.words, tw), align_words(attn, seg.words, tw))
        )
        for t, lp, word in zip(h.tokens, h.token_scores, tw):
            tokens.append(
                {
                    "token": tr.target_tokenizer.id_to_token(t),
                    "log_prob": lp,
                    "target_word": word + tgt_before,
                }
            )
        log_probs += h.token_scores
        translation.append(part)
        tgt_before += len(part.split())
    tgt_words = " ".join(translation).split()
    matrix = np.zeros((len(tgt_words), len(src_words)))
    alignment = []
    for before, m, pairs in blocks:
        matrix[before : before + m.shape[0], : m.shape[1]] += m
        alignment += [(s, t + before) for s, t in pairs]
    return {
        "source": text,
        "translation": " ".join(translation),
        "source_words": src_words,
        "target_words": tgt_words,
        "alignment": [list(p) for p in sorted(alignment)],
        "tokens": tokens,
        "log_prob": float(sum(log_probs)),
        "attention": matrix.round(4).tolist(),
        "attention_from": {"layer": a.layer, "heads": "all" if a.heads is None else a.heads},
    }


def heatmap(info: dict, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError(
            "the attention picture needs matplotlib: pip install 'traductor[explain]'"
        ) from e
    m = np.asarray(info["attention"])
    src, tgt = info["source_words"], info["target_words"]
    fig, ax = plt.subplots(
        figsize=(max(4, 0.45 * len(src) + 2), max(3, 0.4 * len(tgt) + 1.5)), dpi=110
    )
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(tgt)), tgt, fontsize=9)
    for s, t in info["alignment"]:
        ax.add_patch(
            plt.Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=1.2)
        )
    ax.set_xlabel("source words")
    ax.set_ylabel("translation words")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def explain_main(args) -> int:
    try:
        import matplotlib  # noqa: F401  (checked first: nothing is written without it)
    except ImportError as e:
        raise InputError(
            "traductor explain draws with matplotlib: pip install 'traductor[explain]'"
        ) from e
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out must be a directory, and {out} is a file")
    tr = Translator(args.model, variant=args.variant)
    info = explain(tr, args.text, args.beam, args.target_language)
    out.mkdir(parents=True, exist_ok=True)
    (out / "translation.txt").write_text(info["translation"] + "\n", encoding="utf-8")
    (out / "explain.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    a = info["attention_from"]
    heatmap(
        info,
        out / "attention.png",
        f"{tr.model_dir.name} ({tr.variant}): cross-attention, decoder layer {a['layer']}, "
        f"{'mean of heads' if a['heads'] == 'all' else 'heads ' + str(a['heads'])}; red: alignment",
    )
    print(info["translation"])
    print(f"wrote {out / 'translation.txt'}, {out / 'attention.png'}, {out / 'explain.json'}")
    return 0
