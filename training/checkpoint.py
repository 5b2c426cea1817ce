"""Checkpoints: plain dicts of tensors and primitives, which `torch.load(weights_only=True)` reads.

A checkpoint can also be kept compact (`save_compact`, a `.npz`): the model weights in float16 plus
the model config, tokenizer and training facts, without optimizer state. It is how the repository
tracks the shipped model's weights (half the bytes of the fp32 graphs), and `traductor export`
reads it like a `.pt` checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .data import DataError


def save_checkpoint(state: dict, path: Path | str) -> None:
    """Write atomically: a crash mid-write never leaves a half checkpoint under the real name."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


COMPACT_FORMAT = "traductor-weights"
_META, _TOKENIZER, _PARAM = "__meta__", "__tokenizer__", "param/"
_FACTS = (
    "step",
    "best_bleu",
    "train_config",
)  # carried over into the model card by `traductor export`


def save_compact(state: dict, path: Path | str) -> Path:
    """Checkpoint dict -> .npz with float16 weights (what the model card and export need, no
    optimizer state)."""
    path = Path(path)
    meta = {
        "format": COMPACT_FORMAT,
        "version": 1,
        "model_config": state["model_config"],
        "dtype": "float16",
    }
    meta.update({k: state[k] for k in _FACTS if k in state})
    arrays = {
        _PARAM + name: t.detach().cpu().float().numpy().astype(np.float16)
        for name, t in state["model"].items()
    }
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise DataError(
                f"{name[len(_PARAM) :]} does not fit in float16 (values beyond +-65504)"
            )
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp, **{_META: _bytes(json.dumps(meta)), _TOKENIZER: _bytes(state["tokenizer"])}, **arrays
    )
    os.replace(tmp, path)
    return path


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def load_compact(path: Path) -> dict:
    """.npz from save_compact -> a checkpoint dict with float32 weights."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z[_META].tobytes().decode("utf-8"))
            if meta.get("format") != COMPACT_FORMAT:
                raise DataError(
                    f"{path} is not a traductor weights file (format {meta.get('format')!r})"
                )
            model = {
                k[len(_PARAM) :]: torch.from_numpy(z[k].astype(np.float32))
                for k in z.files
                if k.startswith(_PARAM)
            }
            tokenizer = z[_TOKENIZER].tobytes().decode("utf-8")
    except (OSError, ValueError, KeyError) as e:
        raise DataError(
            f"{path} is not a readable traductor weights file: "
            f"{e.__class__.__name__}: {str(e)[:200]}"
        ) from e
    return {
        "model_config": meta["model_config"],
        "model": model,
        "tokenizer": tokenizer,
        **{k: meta[k] for k in _FACTS if k in meta},
    }


def load_checkpoint(path: Path | str) -> dict:
    """A .pt checkpoint, or a compact .npz one (weights come back as float32)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    if path.suffix == ".npz":
        return load_compact(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise DataError(
            f"{path} is not a readable traductor checkpoint: {e.__class__.__name__}: {str(e)[:200]}"
        ) from e
    missing = [k for k in ("model_config", "model", "tokenizer") if k not in state]
    if missing:
        raise DataError(f"{path} is not a traductor checkpoint (missing {', '.join(missing)})")
    return state


def load_model(path: Path | str, device: str = "cpu"):
    """-> (Transformer in eval mode, Tokenizer, checkpoint dict)."""
    from tokenizers import Tokenizer

    from .model import ModelConfig, Transformer

    state = load_checkpoint(path)
    model = Transformer(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), Tokenizer.from_str(state["tokenizer"]), state
