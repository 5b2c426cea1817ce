"""`traductor embeddings`: a t-SNE map of a model's token embeddings, and their nearest neighbours.

    traductor embeddings [--model DIR] --out map.png [--json map.json] [--corpus FILE] [--top 300]

The embedding matrix is read from the package's ONNX graphs (the `Gather` of the encoder's input
ids: `embed.weight`, stored as fp16 in int8 graphs) with numpy alone, not from a training
checkpoint, so it works on any package, including the wheel's int8-only one.

Which tokens are mapped: the N most frequent (special and byte-fallback tokens aside).
- Without --corpus, the package's own tokenizer ranks them, so an installed model is enough. A BPE
  vocabulary (this project's models) is ranked by its merge list, which the `tokenizers` trainer
  writes in order of pair frequency (see `_bpe_estimates`); a Unigram vocabulary (converted OPUS-MT
  models) by its pieces' scores, the log-probabilities SentencePiece learnt. A token's language is
  the side whose tokenizer scores it higher where the package has one per side (OPUS-MT), or the
  side of its matrix where there are two; a joint vocabulary has no side, and the map one colour.
- With --corpus FILE (source<TAB>target lines, e.g. the model's training data), each token is
  counted on the corpus, and its language is the side it occurs on more.

The tokens are projected to 2-D with t-SNE on cosine distances and drawn labelled, one colour per
language; the JSON beside the map lists each token's nearest neighbours by cosine similarity among
every token of the pool (the corpus's tokens, or the vocabulary's), and a few probes such as "Dios"
and "God".

This module is not imported by the runtime core: it needs matplotlib and scikit-learn (the
`explain` extra), imported only when a map is made.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .package import (
    InputError,
    ModelError,
    ModelPackageConfig,
    graph_contents,
    installed_variants,
    read_config,
    tensor_array,
    tensor_dims,
)
from .translator import _load_tokenizer

DEFAULT_TOP, DEFAULT_NEIGHBOURS, DEFAULT_SEED = 300, 8, 0
MIN_TOP = 10
EXACT_TSNE_MAX = 1000
WORD_MARK = "\u2581"  # ▁, the SentencePiece/Metaspace word marker
BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
PRIVATE_MARKERS = re.compile("[\U00100000-\U0010fffd]")
EXTRA_HINT = "pip install 'traductor[explain]'"
# Probes: a source word and its usual translations (the first that is one target token wins).
PROBES = [
    ("Dios", ["God"]),
    ("Señor", ["Lord", "LORD"]),
    ("Jehová", ["Yahweh", "LORD"]),
    ("Jesús", ["Jesus"]),
    ("rey", ["king"]),
    ("tierra", ["earth", "land"]),
    ("agua", ["water"]),
    ("padre", ["father"]),
    ("hijo", ["son"]),
    ("cielo", ["heaven", "sky"]),
]
LANGUAGE_NAMES = {
    "es": "Spanish",
    "en": "English",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "ca": "Catalan",
    "nl": "Dutch",
    "la": "Latin",
    "el": "Greek",
    "he": "Hebrew",
    "ru": "Russian",
    "mul": "several languages",
}


@dataclass
class Space:
    """One embedding matrix and the tokenizer whose ids index its rows."""

    matrix: np.ndarray  # (vocab, d_model) float32
    tokenizer: object  # tokenizers.Tokenizer
    source: str  # "<graph file>:<initializer name>"
    # a shared space: the target side's segmenter, when it has its own file
    target_tokenizer: object | None = None


# -- reading the package ---------------------------------------------------------------------------


def _graph_embedding(
    path: Path, input_ids: str, model_dir: Path, prefer: tuple[str, ...] = ()
) -> tuple[np.ndarray, str]:
    """The embedding matrix of one graph: the 2-D initializer that a Gather indexes with the
    graph's input ids (fp16 in int8 graphs, cast back to float32). Read with the runtime's own
    protobuf reader (runtime/package.py), so neither onnx nor torch is needed."""
    try:
        nodes, inits = graph_contents(path.read_bytes())
    except ModelError as e:
        raise ModelError(f"{path} could not be loaded: {e}") from e
    names = [
        inputs[0]
        for op, inputs in nodes
        if op == "Gather" and len(inputs) == 2 and inputs[1] == input_ids and inputs[0] in inits
    ]
    names = [n for n in names if len(tensor_dims(inits[n])) == 2]
    names.sort(
        key=lambda n: next(
            (i for i, p in enumerate(prefer) if n.removesuffix("_fp16").endswith(p)), len(prefer)
        )
    )
    if not names:  # a graph written differently: fall back to the exporter's names
        names = [
            n
            for p in (*prefer, "embed.weight")
            for n in (p, f"{p}_fp16", f"model.{p}", f"model.{p}_fp16")
            if n in inits
        ]
    if not names:
        raise ModelError(
            f"{path.name} has no embedding matrix "
            f"(no Gather of {input_ids!r} from a 2-D initializer)"
        )
    matrix = tensor_array(inits[names[0]], f"{path.name}:{names[0]}", model_dir)
    if not np.all(np.isfinite(matrix)):
        raise ModelError(f"{path.name}: {names[0]} holds non-finite values")
    return matrix, f"{path.name}:{names[0]}"


def _graph_files(model_dir: Path, cfg: ModelPackageConfig, which: str) -> list[Path]:
    """The present `which` ("encoder"/"decoder") graphs, fp32 variants first."""
    present = installed_variants(model_dir, cfg)
    order = sorted(
        present,
        key=lambda name: (cfg.variants[name].quantization != "none", name != cfg.default_variant),
    )
    files = [model_dir / getattr(cfg.variants[name], which) for name in order]
    return [f for f in files if f.is_file()]


def embedding_spaces(
    model_dir: Path | str, cfg: ModelPackageConfig | None = None
) -> tuple[Space, Space]:
    """(source space, target space). They are the same object when the decoder shares the
    encoder's embeddings (this project's models, OPUS-MT with a joint vocabulary); a package whose
    decoder has its own target vocabulary (`dims.target_vocab_size`) gets the decoder's matrix for
    the target."""
    model_dir = Path(model_dir)
    cfg = cfg or read_config(model_dir)
    encoders = _graph_files(model_dir, cfg, "encoder")
    decoders = _graph_files(model_dir, cfg, "decoder")
    separate = cfg.dims.target_vocab_size is not None
    if encoders:
        matrix, where = _graph_embedding(
            encoders[0], cfg.io.input_ids, model_dir, ("embed.weight",)
        )
    elif decoders and not separate:
        matrix, where = _graph_embedding(
            decoders[0], cfg.io.input_ids, model_dir, ("embed.weight",)
        )
    else:
        raise ModelError(f"{model_dir} holds none of its variants' encoder graphs")
    source_tok = _load_tokenizer(model_dir, cfg.tokenizers.source)
    source = Space(matrix, source_tok, where)
    if not separate:  # one matrix; maybe two segmenters of one vocabulary (OPUS-MT's .spm files)
        if cfg.tokenizers.target != cfg.tokenizers.source:
            source.target_tokenizer = _load_tokenizer(model_dir, cfg.tokenizers.target)
        target = source
    else:
        if not decoders:
            raise ModelError(f"{model_dir} holds none of its variants' decoder graphs")
        tmatrix, twhere = _graph_embedding(
            decoders[0], cfg.io.input_ids, model_dir, ("decoder_embed.weight",)
        )
        target = Space(tmatrix, _load_tokenizer(model_dir, cfg.tokenizers.target), twhere)
    for space, side in ((source, "source"), (target, "target")):
        if space.matrix.shape[0] < space.tokenizer.get_vocab_size():
            raise ModelError(
                f"{space.source} has {space.matrix.shape[0]} rows, "
                f"the {side} tokenizer {space.tokenizer.get_vocab_size()} tokens"
            )
    return source, target


def _target_tokenizer(source: Space, target: Space):
    if target is source:
        return source.target_tokenizer or source.tokenizer
    return target.tokenizer


def embedding_matrix(model_dir: Path | str):
    """-> (the (vocab, d_model) float32 embedding matrix of the encoder, the source tokenizer)."""
    source, _ = embedding_spaces(model_dir)
    return source.matrix, source.tokenizer


# -- tokens ----------------------------------------------------------------------------------------


def _skipped_ids(tokenizer, cfg: ModelPackageConfig, with_specials: bool = True) -> set[int]:
    """Special tokens (the config's, the tokenizer's special added tokens, language tags) and
    byte-fallback tokens such as <0x41>."""
    skip = (
        {
            cfg.special_tokens.pad_id,
            cfg.special_tokens.bos_id,
            cfg.special_tokens.eos_id,
            cfg.special_tokens.unk_id,
        }
        if with_specials
        else set()
    )
    try:
        skip |= {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    except AttributeError:  # older tokenizers
        pass
    for tag in cfg.language_tags.values():
        i = tokenizer.token_to_id(tag)
        if i is not None:
            skip.add(i)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    skip |= {i for t, i in vocab.items() if BYTE_TOKEN.fullmatch(t)}
    return skip


def label_of(token: str, marked: bool = True) -> str:
    """A token as the map shows it: the word marker removed; a piece that continues a word (no
    marker, in a tokenizer that marks word starts) gets a leading '-' so that it is not read as a
    word. Private-use characters of plane 16 (markers of converted OPUS-MT vocabularies) are
    dropped."""
    token = PRIVATE_MARKERS.sub("", token) or token
    if token.startswith(WORD_MARK):
        return token[len(WORD_MARK) :] or WORD_MARK
    return f"-{token}" if marked else token


def read_corpus(path: Path) -> tuple[list[str], list[str]]:
    sources, targets = [], []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) < 2:
                    raise InputError(
                        f"{path}, line {n}: no TAB; a corpus has source<TAB>target lines"
                    )
                sources.append(parts[0])
                targets.append(parts[1])
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text: {e}") from None
    except IsADirectoryError:
        raise InputError(
            f"--corpus {path} is a directory; pass a .tsv file of source<TAB>target lines"
        ) from None
    if not sources:
        raise InputError(f"{path} holds no source<TAB>target lines")
    return sources, targets


def _counts(tokenizer, texts: list[str], size: int) -> np.ndarray:
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, len(texts), 4096):
        encs = tokenizer.encode_batch(texts[start : start + 4096], add_special_tokens=False)
        ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64)
        if ids.size:
            counts += np.bincount(ids, minlength=size)[:size]
    return counts


@dataclass
class Item:
    """One point: a token of one embedding space."""

    space: int  # 0 = source matrix (shared, when there is one), 1 = the decoder's own matrix
    id: int
    token: str
    source_count: int = 0  # occurrences on the corpus's source side (0 without a corpus)
    target_count: int = 0
    weight: float = 0.0  # what ranks it: its count, or the tokenizer's estimate (0: unranked)
    side: int | None = None  # its language: 0 source, 1 target, None unknown

    @property
    def count(self) -> int:
        return self.source_count + self.target_count


def corpus_items(source: Space, target: Space, cfg: ModelPackageConfig, corpus: Path) -> list[Item]:
    """Every token the corpus uses (specials and bytes aside), most frequent first."""
    sources, targets = read_corpus(corpus)
    target_tok = _target_tokenizer(source, target)
    src_counts = _counts(source.tokenizer, sources, source.matrix.shape[0])
    tgt_counts = _counts(target_tok, targets, target.matrix.shape[0])
    items = []
    if target is source:
        skip = _skipped_ids(source.tokenizer, cfg) | _skipped_ids(target_tok, cfg)
        for i in np.flatnonzero(src_counts + tgt_counts):
            # the string of the side it occurs on more (a converted package's tokenizers mark the
            # pieces one side never produces with a private character)
            first, second = (
                (source.tokenizer, target_tok)
                if src_counts[i] >= tgt_counts[i]
                else (target_tok, source.tokenizer)
            )
            token = first.id_to_token(int(i)) or second.id_to_token(int(i))
            if int(i) not in skip and token is not None:
                items.append(_counted(0, int(i), token, int(src_counts[i]), int(tgt_counts[i])))
    else:
        for space, (space_obj, counts) in enumerate(((source, src_counts), (target, tgt_counts))):
            skip = _skipped_ids(space_obj.tokenizer, cfg)
            for i in np.flatnonzero(counts):
                token = space_obj.tokenizer.id_to_token(int(i))
                if int(i) not in skip and token is not None:
                    c = int(counts[i])
                    items.append(
                        _counted(space, int(i), token, c if space == 0 else 0, c if space else 0)
                    )
    items.sort(key=lambda it: (-it.weight, it.space, it.id))
    return items


def _counted(space: int, i: int, token: str, source_count: int, target_count: int) -> Item:
    side = 0 if source_count >= target_count else 1  # ties count as source
    return Item(space, i, token, source_count, target_count, source_count + target_count, side)


# -- tokens ranked by the tokenizer alone ----------------------------------------------------------


def _bpe_estimates(model: dict, size: int) -> np.ndarray:
    """A relative frequency for each merged token of a BPE vocabulary (0 for the others).

    The `tokenizers` BPE trainer merges the most frequent pair of the training corpus at each step
    and appends the result to the list, so merge n counted no more pairs than merge n - 1. A merge's
    rank is not the token's final frequency, though: "▁t" is merged early and later mostly absorbed
    into "▁the". So merge n is taken to have counted about 1/n pairs (Zipf's law), and each token
    keeps what its merge counted less what every later merge built on it took away. Single
    characters have no merge that counts them and stay unranked. On models/es-en, 196 of the 300
    tokens it ranks first are among the 300 most frequent of the training corpus (plain merge
    order: 144; 29 of those 300 are single characters such as "," and ".").
    """
    vocab = model["vocab"]
    prefix = model.get("continuing_subword_prefix") or ""
    estimates = np.zeros(size)
    for n, merge in enumerate(model.get("merges") or []):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        made = vocab.get(
            left + (right[len(prefix) :] if prefix and right.startswith(prefix) else right)
        )
        if made is None or made >= size:
            continue
        share = 1.0 / (n + 1)
        estimates[made] = share
        for part in (left, right):  # later merges take from merged tokens (characters: unranked)
            i = vocab.get(part)
            if i is not None and i < size and estimates[i]:
                estimates[i] -= share
    return np.clip(estimates, 0.0, None)


def _unigram_estimates(model: dict, size: int) -> np.ndarray:
    """Each piece's probability, exp(score); NaN for entries with no real score (0.0: the
    placeholders a converted OPUS-MT tokenizer holds for the other side's pieces and specials)."""
    estimates = np.full(size, np.nan)
    for i, (_, score) in enumerate(model["vocab"][:size]):
        if score < 0:
            estimates[i] = np.exp(score)
    return estimates


def _tokenizer_estimates(tokenizer, size: int, side: str) -> tuple[str, np.ndarray]:
    """The tokenizer's model type and (size,) relative frequencies from it alone: > 0 ranked, 0 in
    the vocabulary but unranked, NaN not a token the tokenizer produces."""
    model = json.loads(tokenizer.to_str())["model"]
    if model["type"] == "BPE":
        return "BPE", _bpe_estimates(model, size)
    if model["type"] == "Unigram":
        return "Unigram", _unigram_estimates(model, size)
    raise InputError(
        f"the {side} tokenizer is a {model['type']} model, which holds no frequency order; "
        "pass --corpus FILE (source<TAB>target lines) to count tokens on"
    )


def _ranked(
    space: int, tokenizers: list, estimates: list[np.ndarray], cfg: ModelPackageConfig, side
) -> list[Item]:
    """The tokens any of `tokenizers` produces (specials and bytes aside). With two, one per side of
    one matrix, a token takes the side, and the string, of the tokenizer that scores it higher."""
    table = np.stack([np.nan_to_num(e, nan=-1.0) for e in estimates])  # (tokenizers, rows)
    best, weight = table.argmax(axis=0), table.max(axis=0)  # ties: the first, the source
    skip = set().union(*(_skipped_ids(t, cfg) for t in tokenizers))
    items = []
    for i in np.flatnonzero(weight >= 0):
        first = tokenizers[best[i]]
        token = first.id_to_token(int(i)) or tokenizers[-1 - best[i]].id_to_token(int(i))
        if int(i) not in skip and token is not None:
            own_side = int(best[i]) if len(tokenizers) == 2 else side
            items.append(Item(space, int(i), token, weight=float(weight[i]), side=own_side))
    return items


def package_items(source: Space, target: Space, cfg: ModelPackageConfig) -> tuple[str, list[Item]]:
    """The tokenizer's model type, and every token of the vocabulary (specials and bytes aside),
    the tokenizer's most frequent first; those it cannot rank (weight 0) last."""
    target_tok = _target_tokenizer(source, target)
    kind, src = _tokenizer_estimates(source.tokenizer, source.matrix.shape[0], "source")
    if target is not source:  # two matrices: a token's side is its matrix's
        _, tgt = _tokenizer_estimates(target_tok, target.matrix.shape[0], "target")
        items = _ranked(0, [source.tokenizer], [src], cfg, 0)
        items += _ranked(1, [target_tok], [tgt], cfg, 1)
    elif target_tok is source.tokenizer:  # one joint vocabulary: no side
        items = _ranked(0, [source.tokenizer], [src], cfg, None)
    else:  # one matrix, a segmenter per side (OPUS-MT)
        _, tgt = _tokenizer_estimates(target_tok, source.matrix.shape[0], "target")
        items = _ranked(0, [source.tokenizer, target_tok], [src, tgt], cfg, None)
    items.sort(key=lambda it: (-it.weight, it.space, it.id))
    return kind, items


# -- neighbours ------------------------------------------------------------------------------------


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class Neighbours:
    """Cosine similarity among the pool of tokens the corpus uses, within one embedding space."""

    def __init__(self, items: list[Item], spaces: list[Space]):
        self.items = items
        self.index = {(it.space, it.id): n for n, it in enumerate(items)}
        self.vectors = _unit(
            np.stack([spaces[it.space].matrix[it.id] for it in items]).astype(np.float32)
        )
        self.spaces = np.array([it.space for it in items])

    def similarities(self, rows: list[int]) -> np.ndarray:
        """(len(rows), pool) cosines of the given items with every item; -inf for an item itself and
        for items of another embedding space."""
        rows = np.asarray(rows, dtype=np.int64)
        sims = (self.vectors[rows] @ self.vectors.T).astype(np.float64)
        sims[self.spaces[rows][:, None] != self.spaces[None, :]] = -np.inf
        sims[np.arange(len(rows)), rows] = -np.inf
        return sims

    def nearest(self, rows: list[int], k: int) -> list[list[tuple[Item, float]]]:
        """The k nearest neighbours of each item, most similar first (ties by frequency)."""
        out = []
        for start in range(0, len(rows), 256):
            sims = self.similarities(rows[start : start + 256])
            for row in sims:
                order = np.argsort(-row, kind="stable")[:k]  # the pool is sorted by frequency
                out.append([(self.items[j], float(row[j])) for j in order if np.isfinite(row[j])])
        return out

    def rank(self, n: int, other: int, among: np.ndarray | None = None) -> int:
        """1 = `other` is n's nearest neighbour (among the items where the mask `among` is true)."""
        sims = self.similarities([n])[0]
        better = sims > sims[other]
        return int(np.sum(better & among if among is not None else better)) + 1


def _find(items_index: dict, tokenizer, word: str, space: int) -> int | None:
    """The pool index of a word as one token: with the word marker first, then without."""
    for token in (WORD_MARK + word, word):
        i = tokenizer.token_to_id(token)
        if i is not None and (space, i) in items_index:
            return items_index[(space, i)]
    return None


# -- the command: options, pool, t-SNE, report -----------------------------------------------------


@dataclass(frozen=True)
class MapOptions:
    """What `traductor embeddings` was asked for, checked."""

    out: Path  # the map, a .png file
    json_out: Path  # the neighbours and probes, a .json file
    top: int  # how many of the most frequent tokens to map
    neighbours: int  # nearest neighbours listed per token
    seed: int  # t-SNE random state
    corpus: Path | None  # source<TAB>target file to count tokens on; None: the tokenizer ranks them


@dataclass
class Ranking:
    """The pool of tokens, most frequent first, and how their frequencies and languages were
    found."""

    items: list[Item]
    ranked: int  # how many of the items have a frequency (weight > 0); only those are mapped
    corpus: Path | None
    ranked_by: str  # how the frequencies were found, in words
    language_rule: str  # how each token's language was found, in words
    legend_title: str

    @property
    def sided(self) -> bool:
        return all(it.side is not None for it in self.items)


def _int_arg(args, name: str, default: int) -> int:
    value = getattr(args, name, None)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"--{name} must be an integer, got {value!r}")
    return int(value)


def _corpus_path(value) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise InputError(f"--corpus {value}: no such file")
    return path


def read_options(args) -> MapOptions:
    """The command's arguments, checked: each mistake is one InputError naming the flag."""
    out_value = getattr(args, "out", None)
    if not out_value or not str(out_value).lower().endswith(".png"):
        raise InputError(f"--out must name a .png file, got {out_value!r}")
    out = Path(out_value).expanduser()
    json_value = getattr(args, "json", None)
    json_out = Path(json_value).expanduser() if json_value else out.with_suffix(".json")
    if json_out.resolve() == out.resolve():
        raise InputError("--json must differ from --out")
    top = _int_arg(args, "top", DEFAULT_TOP)
    k = _int_arg(args, "neighbours", DEFAULT_NEIGHBOURS)
    seed = _int_arg(args, "seed", DEFAULT_SEED)
    if top < MIN_TOP:
        raise InputError(f"--top must be at least {MIN_TOP}, got {top}")
    if k < 1:
        raise InputError(f"--neighbours must be at least 1, got {k}")
    corpus = _corpus_path(getattr(args, "corpus", None))
    return MapOptions(out, json_out, top, k, seed, corpus)


def _model_dir(args) -> Path:
    from .models import resolve_model

    try:
        model_dir = resolve_model(getattr(args, "model", None))
    except ModelError as e:
        raise InputError(str(e)) from None
    if not model_dir.is_dir():
        raise InputError(
            f"--model {getattr(args, 'model', None)}: no such model directory ({model_dir})"
        )
    return model_dir


def _tsne_class():
    """scikit-learn's TSNE, after checking that the explain extra (matplotlib too) is installed."""
    try:
        import matplotlib  # noqa: F401
        from sklearn.manifold import TSNE
    except ImportError as e:
        module = (e.name or "").split(".")[0]
        missing = {"sklearn": "scikit-learn"}.get(module, module) or "a module"
        raise InputError(
            f"`traductor embeddings` needs matplotlib and scikit-learn ({missing} is missing): "
            f"{EXTRA_HINT}"
        ) from None
    return TSNE


def _corpus_ranking(source: Space, target: Space, cfg: ModelPackageConfig, corpus: Path) -> Ranking:
    items = corpus_items(source, target, cfg, corpus)
    return Ranking(
        items,
        len(items),
        corpus,
        f"counted on {corpus.name}",
        "the side (source or target) of the corpus where the token occurs more often; "
        "ties count as source",
        "language (the side it occurs on more)",
    )


def _package_ranking(source: Space, target: Space, cfg: ModelPackageConfig) -> Ranking:
    kind, items = package_items(source, target, cfg)
    ranked = sum(it.weight > 0 for it in items)
    ranked_by = (
        "estimated from the tokenizer's BPE merge order"
        if kind == "BPE"
        else "the tokenizer's Unigram piece probabilities"
    )
    if target is not source:
        rule, legend = "the side of the embedding matrix it belongs to", "language (its matrix)"
    elif all(it.side is not None for it in items):
        rule = "the side whose tokenizer gives it the higher probability; ties count as source"
        legend = "language (the side whose tokenizer scores it higher)"
    else:
        rule = "unknown: one vocabulary for both sides; pass --corpus FILE to split by language"
        legend = "language unknown without --corpus"
    return Ranking(items, ranked, None, ranked_by, rule, legend)


def _ranking(source: Space, target: Space, cfg: ModelPackageConfig, opts: MapOptions) -> Ranking:
    """The pool of tokens, checked against --top and --neighbours."""
    vocab = source.matrix.shape[0] + (0 if target is source else target.matrix.shape[0])
    if opts.top > vocab:
        raise InputError(f"--top {opts.top} is larger than the model's vocabulary ({vocab} tokens)")
    if opts.corpus is not None:
        ranking = _corpus_ranking(source, target, cfg, opts.corpus)
        uses = f"{opts.corpus} uses only {{n}} distinct tokens"
        larger = "a larger corpus"
    else:
        ranking = _package_ranking(source, target, cfg)
        uses = "the tokenizer ranks only {n} tokens"
        larger = "--corpus FILE"
    n = ranking.ranked
    if n < opts.top:
        fix = (
            f"pass --top {n} or less, or {larger}"
            if n >= MIN_TOP
            else f"a map needs at least {MIN_TOP}; pass {larger}"
        )
        raise InputError(f"{uses.format(n=n)} (special and byte tokens aside); {fix}")
    if opts.neighbours >= len(ranking.items):
        n = len(ranking.items)
        raise InputError(
            f"--neighbours {opts.neighbours}: {uses.format(n=n)}; pass --neighbours {n - 1} or less"
        )
    return ranking


def _languages(items: list[Item], cfg: ModelPackageConfig) -> tuple[list, list[tuple]]:
    """Each item's language code (None: unknown), and the legend's groups: (code, name)."""
    codes = (cfg.source_language, cfg.target_language)
    if codes[0] == codes[1]:
        codes = (f"{codes[0]} (source)", f"{codes[1]} (target)")
    if any(it.side is None for it in items):
        both = f"{_language_name(codes[0])} and {_language_name(codes[1])}"
        return [None] * len(items), [(None, both)]
    return [codes[it.side] for it in items], [(code, _language_name(code)) for code in codes]


def _tsne_map(tsne_class, vectors: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """(points, 2) coordinates by t-SNE on cosine distances, and its settings for the report."""
    perplexity = _perplexity(len(vectors))
    # exact: faster for a few hundred points
    method = "exact" if len(vectors) <= EXACT_TSNE_MAX else "barnes_hut"
    tsne = tsne_class(
        n_components=2,
        perplexity=perplexity,
        metric="cosine",
        init="pca",
        learning_rate="auto",
        random_state=seed,
        method=method,
    )
    xy = tsne.fit_transform(vectors)
    return xy, {
        "method": method,
        "perplexity": round(perplexity, 3),
        "metric": "cosine",
        "init": "pca",
        "random_state": seed,
        "kl_divergence": round(float(tsne.kl_divergence_), 4),
    }


def _token_entries(
    items: list[Item], languages: list, xy: np.ndarray, near: Neighbours, k: int, counted: bool
) -> list[dict]:
    """The report's line per mapped token: its label, language, (counts,) place and neighbours."""
    marked = any(it.token.startswith(WORD_MARK) for it in items)
    nearest = near.nearest(list(range(len(items))), k)
    entries = []
    for n, (it, lang) in enumerate(zip(items, languages)):
        entry = {"token": it.token, "label": label_of(it.token, marked), "language": lang}
        if counted:
            entry.update(count=it.count, source_count=it.source_count, target_count=it.target_count)
        entry["xy"] = [round(float(v), 3) for v in xy[n]]
        entry["neighbours"] = [{"token": o.token, "cosine": round(c, 4)} for o, c in nearest[n]]
        entries.append(entry)
    return entries


def _probes(
    near: Neighbours, source: Space, target: Space, cfg: ModelPackageConfig, k: int, sided: bool
) -> tuple[dict, list[dict]]:
    """The neighbours of each probe word, and how near each probe's translation sits to it."""
    probes, pairs = {}, []
    tgt_tok = _target_tokenizer(source, target)
    tgt_space = 0 if target is source else 1
    target_side = np.array([it.side == 1 for it in near.items])
    for word, translations in PROBES:
        n = _find(near.index, source.tokenizer, word, 0)
        if n is None:
            continue
        probes[word] = [
            {"token": o.token, "cosine": round(c, 4)} for o, c in near.nearest([n], k)[0]
        ]
        for translation in translations:
            m = _find(near.index, tgt_tok, translation, tgt_space)
            if m is None or m == n:
                continue
            sims = near.similarities([n])[0]
            pair = {"source": word, "target": translation}
            if not np.isfinite(sims[m]):  # two embedding matrices: no cosine between them
                pairs.append({**pair, "cosine": None})
                break
            pair.update(
                cosine=round(float(sims[m]), 4),
                rank_of_target=near.rank(n, m),
                rank_of_source=near.rank(m, n),
            )
            if sided:
                pair[f"rank_of_target_among_{cfg.target_language}"] = near.rank(n, m, target_side)
                pair[f"rank_of_source_among_{cfg.source_language}"] = near.rank(m, n, ~target_side)
            pairs.append(pair)
            break
    return probes, pairs


def _titles(
    model_dir: Path, source: Space, target: Space, codes: tuple, ranking: Ranking, n: int
) -> tuple[str, str]:
    title = f"Token embeddings of {model_dir.name}: t-SNE of the {n} most frequent tokens"
    if ranking.corpus is None:
        credit = f"frequencies {ranking.ranked_by}"
    elif target is source:
        credit = f"frequencies and languages from {ranking.corpus.name}"
    else:
        credit = f"frequencies from {ranking.corpus.name}"
    if target is source:
        return title, f"{source.source}, cosine distance; {credit}"
    return title, (
        f"{source.source} ({codes[0]}) and {target.source} ({codes[1]}): two matrices, "
        f"compare within a colour only; {credit}"
    )


def _print_pairs(pairs: list[dict], cfg: ModelPackageConfig) -> None:
    among = f"rank_of_target_among_{cfg.target_language}"
    for p in pairs:
        if p["cosine"] is None:
            continue
        line = (
            f"  {p['source']} -> {p['target']}: cosine {p['cosine']:.3f}, "
            f"{p['target']} is neighbour {p['rank_of_target']} of {p['source']}"
        )
        if among in p:
            line += f" (the {_ordinal(p[among])} {cfg.target_language} token)"
        print(line)


def _perplexity(n: int) -> float:
    """t-SNE's usual 30, smaller for few points (it must stay below their number)."""
    return float(max(2.0, min(30.0, (n - 1) / 3)))


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _language_name(code: str) -> str:
    name = LANGUAGE_NAMES.get(code.split("-")[0].lower())
    return f"{name} ({code})" if name else code


# Where a label may go relative to its point, in points (tried in order until one overlaps nothing).
_LABEL_OFFSETS = [
    (2, 1),
    (2, -9),
    (-3, 1),
    (-3, -9),
    (2, 8),
    (-3, 8),
    (2, -16),
    (-3, -16),
    (8, 1),
    (-9, 1),
    (2, 15),
    (-3, 15),
]


def _place_labels(renderer, texts: list, avoid: list) -> None:
    """Greedy placement: each label (most frequent first) takes the first offset where its box
    overlaps no label placed before it nor the legend; else the offset with the least overlap."""
    placed = np.array([[b.x0, b.y0, b.x1, b.y1] for b in avoid] or np.zeros((0, 4)))

    def overlap(bb) -> float:
        if not len(placed):
            return 0.0
        w = np.clip(np.minimum(placed[:, 2], bb.x1) - np.maximum(placed[:, 0], bb.x0), 0, None)
        h = np.clip(np.minimum(placed[:, 3], bb.y1) - np.maximum(placed[:, 1], bb.y0), 0, None)
        return float(np.sum(w * h))

    for text in texts:
        best, best_overlap = None, np.inf
        for dx, dy in _LABEL_OFFSETS:
            text.set_horizontalalignment("left" if dx > 0 else "right")
            text.xyann = (dx, dy)
            bb = text.get_window_extent(renderer)
            o = overlap(bb)
            if o < best_overlap:
                best, best_overlap = ((dx, dy), bb), o
            if o == 0:
                break
        (dx, dy), bb = best
        text.set_horizontalalignment("left" if dx > 0 else "right")
        text.xyann = (dx, dy)
        placed = np.vstack([placed, [bb.x0, bb.y0, bb.x1, bb.y1]])


def _scatter(ax, xy: np.ndarray, languages: list, groups: list[tuple]) -> dict:
    """One scatter per group (legend: "<name>: <n> tokens"); -> the colour of each group."""
    palette = ("#d62728", "#1f5fbf") if len(groups) == 2 else ("#333333",)
    colours = {code: colour for (code, _), colour in zip(groups, palette)}
    for code, name in groups:
        sel = [i for i, lang in enumerate(languages) if lang == code]
        ax.scatter(
            xy[sel, 0],
            xy[sel, 1],
            s=7,
            color=colours[code],
            alpha=0.7,
            linewidths=0,
            label=f"{name}: {len(sel)} tokens",
        )
    return colours


def _frame(ax, xy: np.ndarray, title: str, subtitle: str, width: int) -> None:
    """Limits with room for the labels, no ticks, light spines, the title wrapped to the width."""
    pad = 0.04 * (xy.max(axis=0) - xy.min(axis=0) + 1e-9)
    ax.set_xlim(xy[:, 0].min() - 2 * pad[0], xy[:, 0].max() + 3 * pad[0])
    ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#bbbbbb")
    ax.set_title(
        textwrap.fill(title, int(width * 8.5)) + "\n" + textwrap.fill(subtitle, int(width * 10)),
        fontsize=12,
    )


def _annotate(ax, xy: np.ndarray, items: list[Item], colours: list[str]) -> list:
    """One label per point, frequent tokens a little larger (items: most frequent first)."""
    logw = np.log(np.array([it.weight for it in items], dtype=np.float64))
    rel = (logw - logw.min()) / max(logw.max() - logw.min(), 1e-9)
    sizes = 8.0 + 4.0 * rel
    marked = any(it.token.startswith(WORD_MARK) for it in items)
    return [
        ax.annotate(
            label_of(it.token, marked),
            xy[i],
            xytext=(2, 1),
            textcoords="offset points",
            va="bottom",
            fontsize=sizes[i],
            color=colours[i],
            alpha=0.95,
        )
        for i, it in enumerate(items)
    ]


def _draw(
    xy: np.ndarray,
    items: list[Item],
    languages: list,
    groups: list[tuple],
    titles: tuple[str, str],
    legend_title: str,
    out: Path,
) -> None:
    """The labelled scatter of the mapped tokens, one colour per language group, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(items)
    width = 16 if n > 120 else 12 if n > 40 else 9
    fig = Figure(figsize=(width, width * 0.75), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = _scatter(ax, xy, languages, groups)
    _frame(ax, xy, *titles, width)
    leg = ax.legend(
        loc="upper right", fontsize=10, markerscale=3, framealpha=0.9, title=legend_title
    )
    leg.get_title().set_fontsize(9)
    fig.tight_layout()
    texts = _annotate(ax, xy, items, [colours[lang] for lang in languages])
    renderer = canvas.get_renderer()
    _place_labels(renderer, texts, [leg.get_window_extent(renderer)])
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})


def _dumps(report: dict) -> str:
    """JSON with one line per token, probe and probe pair: small, and readable in a diff."""

    def one(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in report.items():
        if key == "tokens" or key == "probe_pairs":
            body = ",\n".join(f"  {one(v)}" for v in value)
            parts.append(f" {one(key)}: [\n{body}\n ]" if value else f" {one(key)}: []")
        elif key == "probes":
            body = ",\n".join(f"  {one(k)}: {one(v)}" for k, v in value.items())
            parts.append(f" {one(key)}: {{\n{body}\n }}" if value else f" {one(key)}: {{}}")
        else:
            parts.append(f" {one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def embeddings_main(args) -> int:
    """Write the t-SNE map (PNG) and the neighbours (JSON) of a model's token embeddings.

    Without --corpus the package's tokenizer ranks the tokens (see the module docstring), so an
    installed model is enough; with --corpus FILE they are counted on that corpus.
    """
    opts = read_options(args)
    model_dir = _model_dir(args)
    tsne_class = _tsne_class()
    cfg = read_config(model_dir)
    source, target = embedding_spaces(model_dir, cfg)
    spaces = [source, target]
    ranking = _ranking(source, target, cfg, opts)
    items = ranking.items[: opts.top]
    languages, groups = _languages(items, cfg)
    vectors = _unit(np.stack([spaces[it.space].matrix[it.id] for it in items]).astype(np.float64))
    xy, tsne_settings = _tsne_map(tsne_class, vectors, opts.seed)
    near = Neighbours(ranking.items, spaces)
    counted = ranking.corpus is not None
    tokens = _token_entries(items, languages, xy, near, opts.neighbours, counted)
    probes, pairs = _probes(near, source, target, cfg, opts.neighbours, ranking.sided)
    shared = target is source
    report = {
        "model": str(model_dir),
        "embedding": source.source if shared else [source.source, target.source],
        "shared_embeddings": shared,
        "corpus": str(ranking.corpus) if counted else None,
        **({} if counted else {"ranking": f"frequencies {ranking.ranked_by}"}),
        "source_language": cfg.source_language,
        "target_language": cfg.target_language,
        "language_rule": ranking.language_rule,
        "neighbour_pool": f"the {len(ranking.items)} tokens "
        + ("the corpus uses" if counted else "of the vocabulary")
        + " (special and byte tokens aside), cosine similarity"
        + ("" if shared else ", within each embedding matrix"),
        "tsne": tsne_settings,
        "tokens": tokens,
        "probes": probes,
        "probe_pairs": pairs,
    }
    codes = tuple(code for code, _ in groups) if ranking.sided else ()
    titles = _titles(model_dir, source, target, codes, ranking, len(items))
    _draw(xy, items, languages, groups, titles, ranking.legend_title, opts.out)
    opts.json_out.parent.mkdir(parents=True, exist_ok=True)
    opts.json_out.write_text(_dumps(report), encoding="utf-8")
    print(f"wrote {opts.out} and {opts.json_out}")
    _print_pairs(pairs, cfg)
    return 0
