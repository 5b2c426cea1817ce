"""Checkpoints: plain dicts of tensors and primitives, so `torch.load(weights_only=True)` reads them."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .data import DataError


def save_checkpoint(state: dict, path: Path | str) -> None:
    """Write atomically: a crash mid-write never leaves a half checkpoint under the real name."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise DataError(f"{path} is not a readable traductor checkpoint: {e.__class__.__name__}: {str(e)[:200]}") from e
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
