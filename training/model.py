"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), from torch primitives.

Only the model lives here; data, training and search are elsewhere. The two halves are named
`encode()` and `decode()` and map one to one onto the exported encoder and decoder graphs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from traductor.runtime.package import InputError

# Added to attention scores where a key must not be seen; finite so fully masked rows stay NaN-free.
NEG_INF = -1e9


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int  # joint source+target subword vocabulary (embeddings are tied)
    d_model: int = 256  # width of every residual stream
    n_heads: int = 4  # attention heads; d_model must divide evenly
    d_ff: int = 1024  # inner width of the ReLU feed-forward block
    n_encoder_layers: int = 4
    n_decoder_layers: int = 4
    dropout: float = 0.1  # residual, attention and embedding dropout (paper: 0.1)
    pre_norm: bool = False  # False = post-LN as in the paper (section 3.1); True = pre-LN
    max_len: int = 256  # longest source or target, in subwords, the model is trained and run with
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3
    # Variations that converted models (Hugging Face MarianMT / OPUS-MT) need; the defaults are this
    # project's own model.
    activation: str = "relu"  # feed-forward activation: relu, swish (= silu) or gelu (erf)
    positions: str = (
        "interleaved"  # sinusoid layout: sin/cos interleaved (paper), or "halves": sin | cos
    )
    scale_embedding: bool = True  # embeddings times sqrt(d_model)
    target_vocab_size: int | None = (
        None  # a separate decoder vocabulary and embedding (None: one shared)
    )
    final_logits_bias: bool = False  # a learned bias added to the output logits
    suppress_ids: tuple[int, ...] = ()  # tokens never generated (log-prob -inf), e.g. Marian's pad

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise InputError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        for name in (
            "vocab_size",
            "d_model",
            "n_heads",
            "d_ff",
            "n_encoder_layers",
            "n_decoder_layers",
            "max_len",
        ):
            if getattr(self, name) <= 0:
                raise InputError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"ModelConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if self.positions not in ("interleaved", "halves"):
            raise InputError(
                f"ModelConfig.positions must be 'interleaved' or 'halves', got {self.positions!r}"
            )
        object.__setattr__(self, "suppress_ids", tuple(self.suppress_ids))

    @property
    def output_vocab_size(self) -> int:
        return self.target_vocab_size or self.vocab_size

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "gelu": F.gelu}


def sinusoidal_positions(
    positions: Tensor, d_model: int, layout: str = "interleaved", dtype: torch.dtype = torch.float32
) -> Tensor:
    """Sinusoidal encodings (section 3.5) for integer positions of any shape -> (..., d_model).

    layout "interleaved": sin in even dims, cos in odd ones, as in the paper; "halves": sin in the
    first d_model/2 dims and cos in the second (Marian). Same frequencies either way. dtype: the
    arithmetic's (float64, rounded to float32 after, gives the same table on every CPU; float32
    sin/cos kernels differ between CPUs in the last bit).
    """
    half = torch.arange(0, d_model, 2, device=positions.device, dtype=dtype)
    inv_freq = torch.exp(half * (-math.log(10000.0) / d_model))  # (d_model/2,)
    angles = positions.to(dtype).unsqueeze(-1) * inv_freq  # (..., d_model/2)
    if layout == "halves":
        return torch.cat((angles.sin(), angles.cos()), dim=-1)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class MultiHeadAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.keep_weights = False  # set by the alignment graph: keep the last attention weights
        self.weights: Tensor | None = None

    def split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape  # (batch, len, d_model) -> (batch, heads, len, head_dim)
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """x: (batch, q_len, d_model); k, v: (batch, heads, k_len, head_dim); bias broadcasts to
        (batch, heads, q_len, k_len) and holds 0 where attention is allowed, NEG_INF elsewhere."""
        q = self.split_heads(self.q_proj(x))
        if q.shape[2] == 1:
            # One query (a decoding step): k @ q^T reads K as stored. q @ k^T would make ONNX
            # Runtime fuse a transpose of the whole K cache into the MatMul: ~8x slower at
            # batch 128.
            scores = (k @ (q / math.sqrt(self.head_dim)).transpose(-1, -2)).transpose(-1, -2) + bias
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        weights = self.dropout(scores.softmax(dim=-1))
        if self.keep_weights:
            self.weights = weights  # (batch, heads, q_len, k_len)
        out = (weights @ v).transpose(1, 2).flatten(2)  # (batch, q_len, d_model)
        return self.out_proj(out)

    def attend_grouped(self, x: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """One query per row, rows grouped by sentence: x (sentences * group, 1, d_model); k, v
        (sentences, heads, k_len, head_dim); bias (sentences, 1, 1, k_len).

        Every row of a group (the beams of one sentence) attends the same keys, so cross-attention
        K/V are stored once per sentence instead of once per beam, and the products per sentence
        and head are (k_len x group) matrices instead of `group` matrix-vector products.
        """
        rows, sentences = x.shape[0], k.shape[0]
        q = (
            self.q_proj(x)
            .reshape(sentences, rows // sentences, self.n_heads, self.head_dim)
            .transpose(1, 2)
        )
        # k @ q^T reads K as stored (see `attend`): (sentences, heads, k_len, group)
        scores = (k @ (q / math.sqrt(self.head_dim)).transpose(-1, -2)).transpose(-1, -2) + bias
        weights = self.dropout(scores.softmax(dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(rows, 1, self.n_heads * self.head_dim)
        return self.out_proj(out)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class Sublayer(nn.Module):
    """Residual connection around a sublayer with LayerNorm after (post-LN) or before (pre-LN)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, fn) -> Tensor:
        if self.pre_norm:
            return x + self.dropout(fn(self.norm(x)))
        return self.norm(x + self.dropout(fn(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn, self.ffn = MultiHeadAttention(cfg), FeedForward(cfg)
        self.attn_block, self.ffn_block = Sublayer(cfg), Sublayer(cfg)

    def forward(self, x: Tensor, src_bias: Tensor) -> Tensor:
        def self_attention(h: Tensor) -> Tensor:
            k, v = self.self_attn.project_kv(h)
            return self.self_attn.attend(h, k, v, src_bias)

        x = self.attn_block(x, self_attention)
        return self.ffn_block(x, self.ffn)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn, self.cross_attn, self.ffn = (
            MultiHeadAttention(cfg),
            MultiHeadAttention(cfg),
            FeedForward(cfg),
        )
        self.self_block, self.cross_block, self.ffn_block = (
            Sublayer(cfg),
            Sublayer(cfg),
            Sublayer(cfg),
        )

    def forward(
        self,
        x: Tensor,
        past: tuple[Tensor, Tensor] | None,
        cross: tuple[Tensor, Tensor],
        self_bias: Tensor,
        src_bias: Tensor,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        present: list[tuple[Tensor, Tensor]] = []

        def self_attention(h: Tensor) -> Tensor:
            k, v = self.self_attn.project_kv(h)  # (batch, heads, new_len, head_dim)
            if past is not None:
                k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
            present.append((k, v))
            return self.self_attn.attend(h, k, v, self_bias)

        x = self.self_block(x, self_attention)
        if x.shape[1] == 1:  # a decoding step: cross K/V may be shared by groups of rows (beams)
            x = self.cross_block(
                x, lambda h: self.cross_attn.attend_grouped(h, cross[0], cross[1], src_bias)
            )
        else:
            x = self.cross_block(
                x, lambda h: self.cross_attn.attend(h, cross[0], cross[1], src_bias)
            )
        return self.ffn_block(x, self.ffn), present[0]


@dataclass
class DecoderCache:
    """What incremental decoding keeps between steps.

    self_kv: per layer (key, value) of the tokens decoded so far,
    (batch, heads, past_len, head_dim).
    cross_kv: per layer (key, value) of the encoder output, (batch, heads, src_len, head_dim),
    computed once from the memory and never again.
    """

    cross_kv: list[tuple[Tensor, Tensor]]
    self_kv: list[tuple[Tensor, Tensor]] | None = None
    length: int = 0

    def reorder(self, index: Tensor) -> DecoderCache:
        """Select batch rows (for beam search): index is (new_batch,) into the batch axis."""
        pick = lambda kv: [(k.index_select(0, index), v.index_select(0, index)) for k, v in kv]  # noqa: E731
        return DecoderCache(
            pick(self.cross_kv), None if self.self_kv is None else pick(self.self_kv), self.length
        )


def source_bias(src_mask: Tensor) -> Tensor:
    """(batch, src_len) bool, True = real token -> additive bias (batch, 1, 1, src_len)."""
    return ((~src_mask).to(torch.float32) * NEG_INF)[:, None, None, :]


def causal_bias(new_len: int, past_len: int, device: torch.device) -> Tensor:
    """(1, 1, new_len, past_len + new_len): query t (at absolute position past_len + t) sees the
    keys up to itself."""
    q = torch.arange(new_len, device=device)[:, None] + past_len
    k = torch.arange(past_len + new_len, device=device)[None, :]
    return ((k > q).to(torch.float32) * NEG_INF)[None, None]


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # One matrix for source embedding, target embedding and output projection (section 3.4).
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        # Converted models may keep a separate target vocabulary; the output projection is tied to
        # it.
        self.decoder_embed = (
            nn.Embedding(cfg.target_vocab_size, cfg.d_model) if cfg.target_vocab_size else None
        )
        if cfg.final_logits_bias:
            self.final_logits_bias = nn.Parameter(torch.zeros(cfg.output_vocab_size))
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        # Pre-LN stacks need a final norm; post-LN stacks already end in one.
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # Embeddings are scaled up by sqrt(d_model), so start them at the scale of an output row.
        nn.init.normal_(self.embed.weight, std=self.cfg.d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[self.cfg.pad_id].zero_()

    @property
    def target_embed(self) -> nn.Embedding:
        return self.decoder_embed if self.decoder_embed is not None else self.embed

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.cfg.d_model) if self.cfg.scale_embedding else 1.0

    def embed_tokens(
        self, ids: Tensor, positions: Tensor, table: nn.Embedding | None = None
    ) -> Tensor:
        x = (table or self.embed)(ids) * self.embed_scale + sinusoidal_positions(
            positions, self.cfg.d_model, self.cfg.positions
        )
        return self.dropout(x)

    def encode(self, src_ids: Tensor, src_mask: Tensor) -> Tensor:
        """src_ids (batch, src_len) int64, src_mask (batch, src_len) bool
        -> memory (batch, src_len, d_model)."""
        positions = torch.arange(src_ids.shape[1], device=src_ids.device)
        x = self.embed_tokens(src_ids, positions)
        bias = source_bias(src_mask)
        for layer in self.encoder_layers:
            x = layer(x, bias)
        return self.encoder_norm(x)

    def cross_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention keys and values of every decoder layer, each
        (batch, heads, src_len, head_dim)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.decoder_layers]

    def logits(self, h: Tensor) -> Tensor:
        bias = self.final_logits_bias if self.cfg.final_logits_bias else None
        return F.linear(h, self.target_embed.weight, bias)  # tied output projection

    def log_probs(self, logits: Tensor) -> Tensor:
        """Next-token log-probabilities as the decoder graph outputs them: suppressed tokens get
        -inf after the softmax (the others keep the probability mass the softmax gave them)."""
        out = logits.log_softmax(-1)
        if self.cfg.suppress_ids:
            out = out.clone()
            out[..., list(self.cfg.suppress_ids)] = float("-inf")
        return out

    def decode_step(
        self,
        tgt_ids: Tensor,
        positions: Tensor,
        src_mask: Tensor,
        self_kv: list[tuple[Tensor, Tensor]] | None,
        cross_kv: list[tuple[Tensor, Tensor]],
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The functional core both `decode()` and the exported decoder graph use.

        tgt_ids (batch, new_len); positions (new_len,) absolute positions of those tokens;
        self_kv per layer (batch, heads, past_len, head_dim) or None for an empty past.
        Returns logits (batch, new_len, vocab) and the present self-attention K/V
        (past_len + new_len).
        """
        past_len = 0 if self_kv is None else self_kv[0][0].shape[2]
        x = self.embed_tokens(tgt_ids, positions, self.target_embed)
        self_bias = causal_bias(tgt_ids.shape[1], past_len, tgt_ids.device)
        src_bias = source_bias(src_mask)
        present = []
        for i, layer in enumerate(self.decoder_layers):
            x, kv = layer(
                x, None if self_kv is None else self_kv[i], cross_kv[i], self_bias, src_bias
            )
            present.append(kv)
        return self.logits(self.decoder_norm(x)), present

    def decode(
        self, tgt_ids: Tensor, memory: Tensor, src_mask: Tensor, cache: DecoderCache | None = None
    ) -> tuple[Tensor, DecoderCache]:
        """Run the decoder on tgt_ids (batch, new_len) that follow what `cache` has seen.

        With cache=None the cross-attention K/V are computed from memory and decoding starts at
        position 0. Returns logits (batch, new_len, vocab) and the updated cache.
        """
        if cache is None:
            cache = DecoderCache(cross_kv=self.cross_kv(memory))
        positions = torch.arange(
            cache.length, cache.length + tgt_ids.shape[1], device=tgt_ids.device
        )
        logits, present = self.decode_step(
            tgt_ids, positions, src_mask, cache.self_kv, cache.cross_kv
        )
        return logits, DecoderCache(cache.cross_kv, present, cache.length + tgt_ids.shape[1])

    def forward(self, src_ids: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (batch, tgt_len, vocab) for training."""
        memory = self.encode(src_ids, src_mask)
        logits, _ = self.decode(tgt_in, memory, src_mask)
        return logits
