"""One set of weights, three engines: rebuild the PyTorch model from a package's fp32 ONNX graphs
and convert it to a CTranslate2 model, so every engine in the comparison runs the shipped weights.
compare_engines.py and batch_ceiling.py import it; it measures nothing.

    .venv/bin/python benchmarks/same_weights.py models/es-en --checkpoint /tmp/es-en.pt

Run as a script, it writes the rebuilt model as a traductor checkpoint to --checkpoint (so
`traductor export` can re-export a shipped package without its training run).

In the encoder graph (torch.onnx) Linear weights are transposed constants with generated names; each
is found again through the MatMul feeding the Add of its (still named) bias. The decoder graph names
its weights after the PyTorch parameters. Embeddings and norms keep their names in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from traductor.runtime.package import read_config
from traductor.training.model import ModelConfig, Transformer, sinusoidal_positions


def token_strings(tokenizer) -> list[str]:
    """The tokenizer's vocabulary as a list indexed by id (CTranslate2 takes token strings)."""
    vocab = [""] * tokenizer.get_vocab_size()
    for t, i in tokenizer.get_vocab().items():
        vocab[i] = t
    return vocab


def load_model_weights(model_dir: Path) -> Transformer:
    """Rebuild the PyTorch Transformer with the package's exact fp32 weights."""
    cfg = read_config(model_dir)
    d, st = cfg.dims, cfg.special_tokens
    fp32 = cfg.variants["fp32"]
    named: dict[str, np.ndarray] = {}
    graphs = {f: onnx.load(str(model_dir / f)) for f in (fp32.encoder, fp32.decoder)}
    for g in graphs.values():
        for init in g.graph.initializer:
            a = numpy_helper.to_array(init)
            named[init.name.removeprefix("model.")] = a
    d_ff = named["encoder_layers.0.ffn.fc1.bias"].shape[0]
    mcfg = ModelConfig(
        vocab_size=d.vocab_size,
        d_model=d.d_model,
        n_heads=d.n_heads,
        d_ff=d_ff,
        n_encoder_layers=d.n_encoder_layers,
        n_decoder_layers=d.n_decoder_layers,
        dropout=0.0,
        pre_norm=d.pre_norm,
        max_len=d.max_len,
        pad_id=st.pad_id,
        bos_id=st.bos_id,
        eos_id=st.eos_id,
        unk_id=st.unk_id,
    )
    model = Transformer(mcfg).eval()
    weights = {**_linear_weights_by_bias(graphs, named), **_decoder_weights(named, d.d_model)}
    state = {}
    for n in model.state_dict():
        if n in named:
            state[n] = torch.from_numpy(np.array(named[n]))
        elif n in weights:
            state[n] = torch.from_numpy(np.array(weights[n]))
        else:
            raise KeyError(f"weight {n} not found in the ONNX graphs")
    model.load_state_dict(state)
    return model


def _decoder_weights(named: dict, d_model: int) -> dict[str, np.ndarray]:
    """The decoder graph (export/fused.py) names its weights after the PyTorch parameters:
    `X.weight_t` is X.weight transposed, `qkv` the q/k/v projections side by side; in packages
    whose cross-attention ran on MultiHeadAttention (before the standard-op cross-attention), its
    query bias is the first d_model entries of `q_proj.bias_qkv`."""
    out = {}
    for name, a in named.items():
        if name.endswith(".qkv.weight_t") or name.endswith(".qkv.bias"):
            prefix, kind = name.rsplit(".qkv.", 1)
            parts = np.split(a.T if kind == "weight_t" else a, 3, axis=0)
            for proj, part in zip(("q_proj", "k_proj", "v_proj"), parts):
                out[f"{prefix}.{proj}.{'weight' if kind == 'weight_t' else 'bias'}"] = part
        elif name.endswith(".weight_t"):
            out[name.removesuffix("_t")] = a.T
        elif name.endswith(".q_proj.bias_qkv"):
            out[name.removesuffix("_qkv")] = a[:d_model]
    return out


def _linear_weights_by_bias(graphs: dict, named: dict) -> dict[str, np.ndarray]:
    """Linear(x) exports as Add(MatMul(x, W.T), bias): follow each named bias back to its MatMul."""
    out = {}
    for g in graphs.values():
        inits = {i.name: i for i in g.graph.initializer}
        producers = {o: n for n in g.graph.node for o in n.output}
        for node in g.graph.node:
            if node.op_type != "Add":
                continue
            bias = next((i for i in node.input if i in inits and i.endswith(".bias")), None)
            other = next((i for i in node.input if i != bias), None)
            if bias is None or other not in producers:
                continue
            mm = producers[other]
            if mm.op_type != "MatMul":
                continue
            w = next((i for i in mm.input if i in inits), None)
            if w is None:
                continue
            out[bias.removeprefix("model.").removesuffix(".bias") + ".weight"] = (
                numpy_helper.to_array(inits[w]).T
            )
    return out


def to_ctranslate2(
    model: Transformer, tokens: list[str], out_dir: Path, quantization: str | None = None
) -> Path:
    """Convert to a CTranslate2 TransformerSpec: same architecture, same weights."""
    import ctranslate2
    from ctranslate2.specs import common_spec, transformer_spec

    cfg = model.cfg
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.n_encoder_layers, cfg.n_decoder_layers),
        cfg.n_heads,
        pre_norm=cfg.pre_norm,
        activation=common_spec.Activation.RELU,
    )
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    _set_stacks(spec, sd, cfg)
    spec.decoder.projection.weight = sd["embed.weight"]
    spec.decoder.projection.bias = np.zeros(cfg.vocab_size, dtype=np.float32)
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.bos_token, spec.config.eos_token, spec.config.unk_token = (
        tokens[cfg.bos_id],
        tokens[cfg.eos_id],
        tokens[cfg.unk_id],
    )
    spec.config.decoder_start_token = tokens[cfg.bos_id]
    spec.validate()
    spec.optimize(quantization=quantization)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    del ctranslate2
    return out_dir


def _set_stacks(spec, sd: dict[str, np.ndarray], cfg: ModelConfig) -> None:
    """The encoder's and decoder's embeddings, positions, norms and layers, from the state dict."""
    pos = sinusoidal_positions(torch.arange(cfg.max_len), cfg.d_model).numpy()

    def linear(s, prefix):
        s.weight, s.bias = sd[prefix + ".weight"], sd[prefix + ".bias"]

    def norm(s, prefix):
        s.gamma, s.beta = sd[prefix + ".weight"], sd[prefix + ".bias"]

    def attention(s, prefix, fused_qkv: bool):
        if fused_qkv:
            s.linear[0].weight = np.concatenate([sd[f"{prefix}.{p}_proj.weight"] for p in "qkv"])
            s.linear[0].bias = np.concatenate([sd[f"{prefix}.{p}_proj.bias"] for p in "qkv"])
        else:
            linear(s.linear[0], f"{prefix}.q_proj")
            s.linear[1].weight = np.concatenate([sd[f"{prefix}.{p}_proj.weight"] for p in "kv"])
            s.linear[1].bias = np.concatenate([sd[f"{prefix}.{p}_proj.bias"] for p in "kv"])
        linear(s.linear[-1], f"{prefix}.out_proj")

    for stack, layers in ((spec.encoder, "encoder_layers"), (spec.decoder, "decoder_layers")):
        emb = stack.embeddings[0] if isinstance(stack.embeddings, list) else stack.embeddings
        emb.weight = sd["embed.weight"]
        stack.scale_embeddings = True
        stack.position_encodings.encodings = pos
        if cfg.pre_norm:
            norm(stack.layer_norm, "encoder_norm" if stack is spec.encoder else "decoder_norm")
        for i, layer in enumerate(stack.layer):
            p = f"{layers}.{i}"
            attention(layer.self_attention, f"{p}.self_attn", fused_qkv=True)
            norm(
                layer.self_attention.layer_norm,
                f"{p}.attn_block.norm" if stack is spec.encoder else f"{p}.self_block.norm",
            )
            if stack is spec.decoder:
                attention(layer.attention, f"{p}.cross_attn", fused_qkv=False)
                norm(layer.attention.layer_norm, f"{p}.cross_block.norm")
            linear(layer.ffn.linear_0, f"{p}.ffn.fc1")
            linear(layer.ffn.linear_1, f"{p}.ffn.fc2")
            norm(layer.ffn.layer_norm, f"{p}.ffn_block.norm")


def to_checkpoint(model_dir: Path, out: Path, data: str = "data/bible") -> Path:
    """A traductor checkpoint holding the package's fp32 weights and tokenizer, so `traductor
    export` can re-export a shipped model (after an exporter change) without its training run. The
    training facts the model card quotes (steps, best dev BLEU) are carried over from its card."""
    import re

    from traductor.training.checkpoint import save_checkpoint

    model = load_model_weights(model_dir)
    card = (
        (model_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
        if (model_dir / "MODEL_CARD.md").is_file()
        else ""
    )
    facts = re.search(r"(\d+) steps; best dev BLEU during training\s+([\d.]+)", card)
    state = {
        "model_config": model.cfg.to_dict(),
        "model": model.state_dict(),
        "tokenizer": (model_dir / "tokenizer.json").read_text(encoding="utf-8"),
        "train_config": {"data": data},
    }
    if facts:
        state["step"], state["best_bleu"] = int(facts.group(1)), float(facts.group(2))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, out)
    return out


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", type=Path, help="model package with an fp32 variant")
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="where to write the checkpoint (.pt)"
    )
    p.add_argument(
        "--data", default="data/bible", help="corpus directory recorded as the training data"
    )
    a = p.parse_args()
    print(f"wrote {to_checkpoint(a.model, a.checkpoint, a.data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
