"""`traductor convert marian`: a Hugging Face MarianMT (OPUS-MT) checkpoint -> a traductor package.

One writer, two front ends: this module loads and validates a transformers checkpoint, maps its
weights onto `traductor.training.model.Transformer` (whose options cover Marian: post-LN, swish,
sin|cos positions, separate decoder vocabulary, logits bias, pad never generated), and hands it to
`export.write_package`, the writer `traductor export` uses, with extra gates against transformers:

- fp32 log-probs within 1e-4 of `MarianMTModel` at several shapes, every decoder position, through
  the package's own graphs stepped with their KV cache;
- greedy and beam-4 tokens identical to `MarianMTModel.generate()` on the dev sentences;
- the usual int8 agreement gate (with --int8).

Architecture facts honoured (transformers' modeling_marian.py): post-LN layers with no final norm,
embeddings x sqrt(d_model) when `scale_embedding`, sinusoidal positions with sin in the first half
of the columns and cos in the second, from position 0; biases on q/k/v/out; the configured
activation;
`lm_head` tied to the (decoder) embeddings plus `final_logits_bias`; decoding starts from the pad
token, which is never generated; eos from the config.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from traductor.runtime.package import InputError
from traductor.training.model import ModelConfig, Transformer

from .gates import PARITY_FLOOR, ExportError
from .graphs import quiet_exporters
from .package import PackageOptions, PackageSource, require_positive, write_package

ACTIVATIONS = {"swish": "swish", "silu": "swish", "relu": "relu", "gelu": "gelu"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "pytorch_model.bin",
    "*.spm",
    "vocab.json",
    "target_vocab.json",
    "tokenizer_config.json",
]
PARITY_SHAPES = [(1, 1, 1), (1, 9, 6), (3, 13, 4), (8, 5, 9)]  # (batch, src_len, decoder positions)
PARITY_ATOL = 1e-4
BEAM = 4

# Dev sentences for the gates when --dev is not given: plain sentences in several languages (any
# OPUS-MT source side gets real words from some of them; the gates compare engines, not quality).
SAMPLE_SENTENCES = [
    "The weather is nice today, so we are going to the beach.",
    "Could you tell me where the nearest train station is?",
    "I have been learning to play the piano for three years.",
    "The meeting was postponed until next Tuesday at 10 a.m.",
    "She bought two kilos of apples and a loaf of bread.",
    "Mañana voy a comprar pan en el mercado.",
    "¿Dónde está la biblioteca más cercana?",
    "El gobierno anunció nuevas medidas económicas el lunes.",
    "Me gustaría reservar una mesa para cuatro personas.",
    "Los niños juegan en el parque después de la escuela.",
    "Je voudrais un café et un croissant, s'il vous plaît.",
    "La réunion commencera à neuf heures précises.",
    "Nous avons visité le musée du Louvre pendant les vacances.",
    "Ich habe heute keine Zeit, aber morgen passt es gut.",
    "Der Zug nach Berlin hat zwanzig Minuten Verspätung.",
    "Das Wetter in den Bergen ändert sich sehr schnell.",
    "Il treno per Roma parte alle otto e mezza.",
    "Vou ao supermercado comprar leite e ovos.",
    "De kat slaapt op de bank in de woonkamer.",
    "Hello!",
    "Thank you very much for your help.",
    "Numbers like 3.14, 2026 and 1,000,000 should survive.",
    "Emails such as info@example.com appear in text too.",
    "A very long sentence keeps going with many clauses, because some users paste whole paragraphs "
    "into the box, and the converter must handle them as well as short ones without any trouble.",
]


def fetch(src: str) -> Path:
    """A local directory as is; otherwise a hub id, downloaded with huggingface_hub (needs a
    network)."""
    path = Path(src).expanduser()
    if path.is_dir():
        return path
    if path.exists() or src.startswith((".", "/", "~")) or src.count("/") != 1:
        raise ExportError(
            f"{src} is neither a model directory nor a hub id like Helsinki-NLP/opus-mt-en-es"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise ExportError(
            "downloading from the hub needs huggingface_hub: pip install 'traductor[convert]'"
        ) from e
    print(f"downloading {src} from the Hugging Face hub ...", file=sys.stderr)
    try:
        return Path(snapshot_download(repo_id=src, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, unknown repo, gated repo: one clear line
        raise ExportError(
            f"could not download {src} from the Hugging Face hub: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from e


def load_marian(model_dir: Path):
    """-> (MarianMTModel in eval mode, its config), after checking the files a conversion needs."""
    missing = [
        f
        for f in ("config.json", "source.spm", "target.spm", "vocab.json")
        if not (model_dir / f).is_file()
    ]
    if not any((model_dir / f).is_file() for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ExportError(
            f"{model_dir} is not a transformers MarianMT directory: missing {', '.join(missing)}"
        )
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{model_dir / 'config.json'} is not valid JSON: {e}") from e
    if config.get("model_type") != "marian":
        raise ExportError(
            f"{model_dir} holds a {config.get('model_type')!r} model; "
            "`convert marian` reads model_type 'marian'"
        )
    from transformers import MarianMTModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = MarianMTModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    return model, model.config


def model_config(hf, unk_id: int) -> ModelConfig:
    """Check that our graphs can express the checkpoint, and describe it as a ModelConfig."""
    problems = []
    if hf.encoder_attention_heads != hf.decoder_attention_heads:
        problems.append(
            "encoder and decoder head counts differ "
            f"({hf.encoder_attention_heads} vs {hf.decoder_attention_heads})"
        )
    if hf.encoder_ffn_dim != hf.decoder_ffn_dim:
        problems.append(
            "encoder and decoder feed-forward widths differ "
            f"({hf.encoder_ffn_dim} vs {hf.decoder_ffn_dim})"
        )
    if hf.activation_function not in ACTIVATIONS:
        problems.append(
            f"activation {hf.activation_function!r} (supported: {', '.join(ACTIVATIONS)})"
        )
    for flag in (
        "normalize_before",
        "add_final_layer_norm",
        "normalize_embedding",
        "add_bias_logits",
    ):
        if getattr(hf, flag, False):
            problems.append(f"{flag}=True (a variant modeling_marian.py does not implement)")
    if problems:
        raise ExportError("this MarianMT checkpoint cannot be converted: " + "; ".join(problems))
    separate = not getattr(hf, "share_encoder_decoder_embeddings", True)
    return ModelConfig(
        vocab_size=hf.vocab_size,
        d_model=hf.d_model,
        n_heads=hf.encoder_attention_heads,
        d_ff=hf.encoder_ffn_dim,
        n_encoder_layers=hf.encoder_layers,
        n_decoder_layers=hf.decoder_layers,
        dropout=0.0,
        pre_norm=False,
        max_len=hf.max_position_embeddings - 1,
        pad_id=hf.pad_token_id,
        bos_id=hf.decoder_start_token_id,
        eos_id=hf.eos_token_id if isinstance(hf.eos_token_id, int) else hf.eos_token_id[0],
        unk_id=unk_id,
        activation=ACTIVATIONS[hf.activation_function],
        positions="halves",
        scale_embedding=bool(hf.scale_embedding),
        target_vocab_size=hf.decoder_vocab_size if separate else None,
        final_logits_bias=True,
        suppress_ids=(hf.pad_token_id,),
    )


def map_weights(hf_model, cfg: ModelConfig) -> Transformer:
    """transformers' parameter names -> ours, every tensor used exactly once (no silent
    leftovers)."""
    sd = {k: v.detach().float() for k, v in hf_model.state_dict().items()}
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        for prefix in ("", "model."):
            if prefix + name in sd:
                used.add(prefix + name)
                return sd[prefix + name]
        raise ExportError(f"the checkpoint has no {name}")

    ours = {name: take(theirs) for name, theirs in _weight_names(cfg)}
    ours["final_logits_bias"] = ours["final_logits_bias"].reshape(-1)
    # Tied copies and the fixed position tables are not weights of their own.
    tied_suffixes = (
        "shared.weight",
        "decoder.embed_tokens.weight",
        "lm_head.weight",
        "embed_positions.weight",
    )
    leftovers = sorted(set(sd) - used - {k for k in sd if k.endswith(tied_suffixes)})
    if leftovers:
        raise ExportError(
            f"checkpoint tensors with no place in the converted model: {', '.join(leftovers[:5])}"
        )
    lm_head = sd.get("lm_head.weight")
    target = ours.get("decoder_embed.weight", ours["embed.weight"])
    if lm_head is not None and not torch.equal(lm_head, target):
        raise ExportError(
            "lm_head is not tied to the decoder embeddings; "
            "an untied output projection is not supported"
        )
    model = Transformer(cfg).eval()
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"weight mapping incomplete: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def _weight_names(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(our parameter name, transformers' name without its "model." prefix) for every weight."""
    names = [("embed.weight", "encoder.embed_tokens.weight")]
    if cfg.target_vocab_size:
        names.append(("decoder_embed.weight", "decoder.embed_tokens.weight"))
    names.append(("final_logits_bias", "final_logits_bias"))
    # (theirs, ours, their norm, our norm block) for each attention of a layer
    encoder = [("self_attn", "self_attn", "self_attn_layer_norm", "attn_block")]
    decoder = [
        ("self_attn", "self_attn", "self_attn_layer_norm", "self_block"),
        ("encoder_attn", "cross_attn", "encoder_attn_layer_norm", "cross_block"),
    ]
    for stack, n, blocks in (
        ("encoder", cfg.n_encoder_layers, encoder),
        ("decoder", cfg.n_decoder_layers, decoder),
    ):
        for i in range(n):
            hp, op = f"{stack}.layers.{i}", f"{stack}_layers.{i}"
            for h_attn, o_attn, h_norm, o_block in blocks:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    for t in ("weight", "bias"):
                        names.append((f"{op}.{o_attn}.{proj}.{t}", f"{hp}.{h_attn}.{proj}.{t}"))
                for t in ("weight", "bias"):
                    names.append((f"{op}.{o_block}.norm.{t}", f"{hp}.{h_norm}.{t}"))
            for t in ("weight", "bias"):
                names.append((f"{op}.ffn.fc1.{t}", f"{hp}.fc1.{t}"))
                names.append((f"{op}.ffn.fc2.{t}", f"{hp}.fc2.{t}"))
                names.append((f"{op}.ffn_block.norm.{t}", f"{hp}.final_layer_norm.{t}"))
    return names


def reference_gates(hf_model, cfg: ModelConfig, seed: int = 0):
    """The gates against transformers, run on the fp32 package as the runtime loads it."""

    def gates(package_dir: Path, src: list[list[int]]) -> tuple[dict, list[str]]:
        from traductor.runtime import Translator
        from traductor.runtime.translator import TranslationOptions

        diff = hf_parity(hf_model, cfg, package_dir, seed)
        tr = Translator(package_dir, variant="fp32", intra_threads=1)
        checks, problems = {"transformers_max_diff": diff}, []
        if diff > PARITY_ATOL:
            problems.append(
                "fp32 log-probs differ from transformers' MarianMTModel by "
                f"{diff:.2e} > {PARITY_ATOL}"
            )
        for beam in (1, BEAM):
            ours = [
                h[0].tokens
                for h in tr.translate_ids(src, TranslationOptions(beam_size=beam, batch_size=8))
            ]
            theirs = hf_generate(hf_model, cfg, src, beam, [tr._limit(s) for s in src])
            same = sum(a == b for a, b in zip(ours, theirs))
            checks[f"generate_identical_beam{beam}"] = f"{same}/{len(src)}"
            if same < len(src):
                problems.append(
                    f"beam {beam}: tokens differ from transformers' generate() on "
                    f"{len(src) - same} of {len(src)} dev sentences"
                )
        return checks, problems

    return gates


@torch.no_grad()
def hf_parity(
    hf_model, cfg: ModelConfig, package_dir: Path, seed: int = 0, shapes=PARITY_SHAPES
) -> float:
    """Max |log-prob difference| between the package's fp32 graphs, stepped with their KV cache, and
    MarianMTModel's teacher-forced forward, at every decoder position of every shape."""
    from traductor.runtime.decoder import OnnxStepDecoder
    from traductor.runtime.onnx_model import OnnxSeq2Seq

    ort_model = OnnxSeq2Seq(package_dir, variant="fp32", verify=False)
    g = torch.Generator().manual_seed(seed)
    low = 1 if cfg.pad_id != 0 else 2  # ids that are neither pad nor (usually) eos
    worst = 0.0
    for batch, src_len, steps in shapes:
        ids = torch.randint(low, cfg.vocab_size - 1, (batch, src_len), generator=g)
        ids[ids == cfg.pad_id] = cfg.unk_id
        ids[:, -1] = cfg.eos_id
        mask = torch.ones_like(ids)
        if batch > 1 and src_len > 2:
            cut = src_len // 2
            ids[1, cut:], mask[1, cut:] = cfg.pad_id, 0
            ids[1, cut - 1] = cfg.eos_id
        dec = torch.randint(low, cfg.output_vocab_size - 1, (batch, steps), generator=g)
        dec[dec == cfg.pad_id] = cfg.unk_id
        dec[:, 0] = cfg.bos_id
        ref = (
            hf_model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
            .logits.float()
            .log_softmax(-1)
        )
        ref[..., list(cfg.suppress_ids)] = float("-inf")
        step = OnnxStepDecoder(ort_model, ids.numpy(), mask.numpy())
        for t in range(steps):
            got = step.step(dec[:, t].numpy())
            want = ref[:, t].numpy()
            finite = np.isfinite(want)
            if not np.array_equal(finite, np.isfinite(got)):
                return float("inf")
            considered = (
                want >= PARITY_FLOOR
            )  # the tokens any search could pick (export.PARITY_FLOOR)
            worst = max(worst, float(np.abs(got[considered] - want[considered]).max()))
    return worst


@torch.no_grad()
def hf_generate(
    hf_model, cfg: ModelConfig, src: list[list[int]], beam: int, limits: list[int]
) -> list[list[int]]:
    """transformers' generate() on the same source ids, one sentence at a time (no padding effects),
    pad banned as OPUS-MT checkpoints ask (bad_words_ids), tokens without the start and end token.
    max_new_tokens is one more than our limit: generate() spends its last position on a forced end
    token, the runtime stops there with the sentence unfinished."""
    out = []
    for ids, limit in zip(src, limits):
        seq = hf_model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            num_beams=beam,
            do_sample=False,
            max_new_tokens=limit + 1,
            min_length=0,
            length_penalty=1.0,
            early_stopping=False,
            bad_words_ids=[[cfg.pad_id]],
            num_return_sequences=1,
        )[0].tolist()
        seq = seq[1:]  # the decoder start token
        if cfg.eos_id in seq:
            seq = seq[: seq.index(cfg.eos_id)]
        out.append([t for t in seq if t != cfg.pad_id])
    return out


@dataclass(frozen=True)
class ConvertOptions:
    """`traductor convert marian`: which checkpoint, which dev sentences, how to write the
    package."""

    src: str  # a directory as transformers saves it, or a hub id such as Helsinki-NLP/opus-mt-en-es
    package: PackageOptions  # where and how the package is written (shared with `export`)
    # source sentences for the checks, one per line or source<TAB>target; None: SAMPLE_SENTENCES
    dev: Path | None = None
    dev_sentences: int = 24  # dev sentences used by the checks
    source_lang: str | None = None  # None: from tokenizer_config.json or the model name
    target_lang: str | None = None  # None: from tokenizer_config.json or the model name

    def __post_init__(self):
        if self.dev is not None:
            object.__setattr__(self, "dev", Path(self.dev))
        if not isinstance(self.src, str) or not self.src:
            raise InputError(f"invalid src={self.src!r}: must be a directory or a hub id")
        if not isinstance(self.package, PackageOptions):
            raise InputError(f"invalid package={self.package!r}: must be a PackageOptions")
        require_positive("dev_sentences", self.dev_sentences)


def main(args) -> int:
    """The CLI's `traductor convert marian`: its arguments -> ConvertOptions."""
    options = ConvertOptions(
        src=args.src,
        package=PackageOptions.from_args(args),
        dev=args.dev,
        dev_sentences=args.dev_sentences,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
    )
    return convert_marian(options)


def convert_marian(options: ConvertOptions) -> int:
    """load -> validate -> map the weights -> the package writer, with the gates against
    transformers added to its own."""
    options.package.refuse_overwrite()
    quiet_exporters()
    with torch.no_grad():
        model_dir = fetch(options.src)
        hf_model, hf = load_marian(model_dir)
        toks = _tokenizers(model_dir)
        cfg = model_config(hf, toks.unk_id)
        if (toks.source_vocab_size, toks.target_vocab_size) != (
            cfg.vocab_size,
            cfg.output_vocab_size,
        ):
            raise ExportError(
                f"vocabulary sizes disagree: tokenizers {toks.source_vocab_size}/"
                f"{toks.target_vocab_size}, model {cfg.vocab_size}/{cfg.output_vocab_size}"
            )
        model = map_weights(hf_model, cfg)
        src = options.src
        name = src.rstrip("/") if not Path(src).is_dir() else Path(src).resolve().name
        source_lang, target_lang = _languages(model_dir, name, options)
        tags = {t[2:-2]: t for t in toks.language_tags}
        dev = _dev_sentences(options)
        source = PackageSource(
            model=model,
            source_tokenizer=toks.source,
            target_tokenizer=toks.target,
            source_language=source_lang,
            target_language=target_lang if not tags else "mul",
            card_intro=_card_intro(src, cfg, tags, len(dev)),
            language_tags=tags,
            min_length=0,
            converted_from=f"{src} (transformers MarianMT)",
            reference=reference_gates(hf_model, cfg),
        )
        return write_package(source, dev, options.package)


def _tokenizers(model_dir: Path):
    """The checkpoint's tokenizers, refused where a piece maps to <unk> (not expressible yet)."""
    from .marian_tokenizer import convert_marian_tokenizers

    try:
        toks = convert_marian_tokenizers(model_dir)
    except ValueError as e:
        raise ExportError(str(e)) from e
    if toks.source_id_map or toks.target_id_map:
        raise ExportError(
            f"{len(toks.source_id_map) + len(toks.target_id_map)} SentencePiece pieces of this "
            "checkpoint are missing from its vocabulary files; MarianTokenizer maps them to <unk>, "
            "which these packages cannot express yet"
        )
    return toks


def _languages(model_dir: Path, name: str, options: ConvertOptions) -> tuple[str, str]:
    tok_cfg = {}
    if (model_dir / "tokenizer_config.json").is_file():
        tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    found = re.search(
        r"opus-mt-([a-z]{2,3}(?:_[a-zA-Z]+)?)-([a-z]{2,3}(?:_[a-zA-Z]+)?)(?:$|[^a-z])", name
    )
    source = (
        options.source_lang or tok_cfg.get("source_lang") or (found.group(1) if found else None)
    )
    target = (
        options.target_lang or tok_cfg.get("target_lang") or (found.group(2) if found else None)
    )
    if not source or not target:
        raise ExportError(
            f"cannot tell the languages of {name}: pass --source-lang and --target-lang"
        )
    return source, target


def _dev_sentences(options: ConvertOptions) -> list[str]:
    if not options.dev:
        return SAMPLE_SENTENCES[: options.dev_sentences]
    lines = options.dev.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines if line.strip()][: options.dev_sentences]


def _card_intro(src: str, d: ModelConfig, tags: dict, n_dev: int) -> str:
    """The card's opening for a converted checkpoint."""
    vocab = f" (target {d.target_vocab_size})" if d.target_vocab_size else " (shared)"
    languages = "; target languages: " + ", ".join(sorted(tags)) if tags else ""
    import transformers

    version = transformers.__version__
    return (
        f"Converted from `{src}` (transformers MarianMT, OPUS-MT) by `traductor convert marian`.\n"
        "\n"
        f"- Architecture: d_model {d.d_model}, {d.n_heads} heads, {d.n_encoder_layers} encoder + "
        f"{d.n_decoder_layers} decoder layers,\n"
        f"  post-LayerNorm, {d.activation} feed-forward of {d.d_ff}, vocabulary {d.vocab_size}"
        f"{vocab},\n"
        f"  max length {d.max_len}{languages}.\n"
        "- Tokenization: the checkpoint's SentencePiece models rebuilt as `tokenizers` JSON "
        "(source and target), no sentencepiece at run time.\n"
        f"- Checked against transformers {version}: fp32 log-probs at shapes "
        "(batch, source length, decoder steps)\n"
        f"  {PARITY_SHAPES}, greedy and beam {BEAM} tokens against `generate()` on {n_dev} dev "
        "sentences.\n"
    )
