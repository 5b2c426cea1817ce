"""The two ONNX graphs behind one small interface. Knows nothing about search."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .package import (
    INT8_ROWS,
    MANIFEST_FILE,
    ORT_SUFFIX,
    InputError,
    ModelError,
    ModelPackageConfig,
    OrtFormatError,
    check_external_data,
    installed_variants,
    is_ort_format,
    ort_format_version,
    padded_length,
    read_config,
    verify_files,
)

# Short names users type -> ONNX Runtime provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}


def resolve_providers(
    providers, provider_options: dict | None = None, fallback: tuple[str, ...] | list[str] = ()
) -> list[tuple[str, dict]]:
    """Short or full names -> [(ORT name, options)], checked against what this onnxruntime offers.

    An unavailable provider is an error listing what is available, unless `fallback` names providers
    to use instead, in which case a warning says so. CPU is appended last so unsupported nodes run.
    """
    if isinstance(providers, str):
        providers = [providers]
    if not providers:
        raise InputError("providers must name at least one execution provider, e.g. ('cpu',)")
    available = ort.get_available_providers()
    options = provider_options or {}
    chosen: list[tuple[str, dict]] = []
    missing: list[str] = []
    for p in providers:
        if not isinstance(p, str):
            raise InputError(f"providers must be names (str), got {type(p).__name__}")
        name = PROVIDER_ALIASES.get(p.lower(), p)
        if name not in available:
            missing.append(p)
            continue
        chosen.append((name, dict(options.get(p, options.get(name, {})))))
    if missing:
        short = {v: k for k, v in PROVIDER_ALIASES.items()}
        have = ", ".join(f"{short.get(a, a)} ({a})" if a in short else a for a in available)
        if not fallback:
            raise ModelError(
                f"execution provider(s) {', '.join(missing)} not available in this onnxruntime; "
                f"available: {have}"
            )
        chosen_fb = resolve_providers(list(fallback), provider_options)
        warnings.warn(
            f"execution provider(s) {', '.join(missing)} not available; falling back to "
            f"{[c[0] for c in chosen_fb]}",
            RuntimeWarning,
            stacklevel=3,
        )
        chosen = chosen + [c for c in chosen_fb if c[0] not in {n for n, _ in chosen}]
    if "CPUExecutionProvider" not in {n for n, _ in chosen}:
        chosen.append(("CPUExecutionProvider", {}))
    return chosen


# Execution providers that cannot load the int8 graphs: OpenVINO's ONNX reader rejects
# QuantizeLinear with a per-row block over a dynamic number of rows ("Cannot get length of dynamic
# dimension", onnxruntime-openvino 1.24). Its fp32 ran 3-4x faster than int8 there anyway.
NO_INT8 = {"OpenVINOExecutionProvider"}


def choose_variant(
    config: ModelPackageConfig, providers: list[str], available: list[str] | None = None
) -> str:
    """The variant to load when none is asked for: int8 if the package has it and the first provider
    can run it, else the package's default (fp32 where int8 is the default). `available` limits the
    choice to the variants whose files are present (a wheel ships int8 only: installed_variants)."""
    have = [v for v in config.variants if available is None or v in available]
    if not have:
        raise ModelError(
            "the model has none of its variants' files: "
            + ", ".join(f"{n} ({v.encoder}, {v.decoder})" for n, v in config.variants.items())
        )
    if all(v.endswith(ORT_SUFFIX) for v in have):
        # A copy with only ORT-format graphs (as a phone app ships it): the same choice among them.
        return choose_variant(config, providers, [v[: -len(ORT_SUFFIX)] for v in have]) + ORT_SUFFIX
    if "int8" in have and providers[0] not in NO_INT8:
        return "int8"
    if config.default_variant == "int8" and "fp32" in have:
        return "fp32"
    return config.default_variant if config.default_variant in have else have[0]


def check_variant(
    config: ModelPackageConfig,
    variant: str,
    providers: list[str],
    available: list[str] | None = None,
) -> None:
    if variant not in config.variants:
        raise ModelError(f"model has no variant {variant!r}; it has: {', '.join(config.variants)}")
    if available is not None and variant not in available:
        files = config.variants[variant]
        raise ModelError(
            f"this copy of the model has only the {', '.join(available) or 'no'} variant(s): "
            f"{variant} is not installed "
            f"({files.encoder} and {files.decoder} are not here; in a source checkout, `make fp32` "
            "rebuilds fp32)"
        )
    if config.variants[variant].quantization == INT8_ROWS and providers[0] in NO_INT8:
        raise ModelError(
            f"the {variant} variant does not run on {providers[0]} (its per-row QuantizeLinear is "
            "not supported "
            "there); use variant 'fp32'"
        )


@dataclass
class SessionSettings:
    providers: list[tuple[str, dict]]
    intra_threads: int | None = (
        None  # None = automatic, see OnnxSeq2Seq; n = n threads for every run
    )
    optimization: str = "all"  # "disable", "basic", "extended", "all"


# Automatic threads (intra_threads=None): a run over less work than this stays on one thread, more
# goes to a session on all cores. Measured on 2 cores, int8, 1 vs 2 threads, in ms:
# decoder step: 1 row 0.20 vs 0.35, 16 rows 1.10 vs 1.10, 32 rows 2.79 vs 2.14, 128 rows 10.2 vs 7.1
# encoder: 36 tokens 0.85 vs 0.68, 640 tokens (16 x 40) 13.1 vs 7.3. The encoder's gain on one
# short sentence is lost twice over to its idle workers spinning beside the decoder (greedy batch 1:
# 7% slower end to end), so it also waits for some work.
WIDE_DECODER_ROWS = 24
WIDE_ENCODER_TOKENS = 128


_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


# ONNX Runtime fusions left out on the CPU. SkipLayerNormalization (a residual Add fused with the
# LayerNormalization after it, which ORT makes in traced encoders) is slower there than the two
# ops: the encoder ran 1.03-1.13x faster without it at OPUS-MT size (docs/performance.md). The
# ORT-format files are written without it too (export/ort.py), so they decode as the .onnx do.
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def _session(
    model_bytes: bytes, name: str, model_dir: Path, settings: SessionSettings, threads: int
) -> ort.InferenceSession:
    so = ort.SessionOptions()
    # Graphs are loaded from the bytes we hashed; any external data must live inside the model dir.
    so.add_session_config_entry(
        "session.model_external_initializers_file_folder_path", str(model_dir.resolve())
    )
    so.graph_optimization_level = _OPT_LEVELS[settings.optimization]
    so.intra_op_num_threads = threads  # 0 = onnxruntime's default: one per physical core
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    cpu = settings.providers[0][0] == "CPUExecutionProvider"
    try:
        return ort.InferenceSession(
            model_bytes,
            sess_options=so,
            providers=[p for p, _ in settings.providers],
            provider_options=[o for _, o in settings.providers],
            disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS) if cpu else None,
        )
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        msg = str(e).splitlines()[0][:300]
        if is_ort_format(model_bytes):
            version = ort_format_version(model_bytes) or "(unreadable)"
            raise OrtFormatError(
                f"{name} is in ORT format version {version}, which onnxruntime "
                f"{ort.__version__} cannot load ({msg}): use the onnxruntime that wrote it or a "
                f"newer one, or the .onnx variant (the name without {ORT_SUFFIX!r})"
            ) from e
        if "escapes" in msg:
            raise ModelError(
                f"{name} refused: it refers to external data outside the model directory ({msg})"
            ) from e
        raise ModelError(f"{name} could not be loaded by onnxruntime: {msg}") from e


class OnnxSeq2Seq:
    """Encoder and KV-cache decoder sessions of one package variant.

    encode(ids, mask) -> cross K/V per layer; step(...) -> log-probs and the present self K/V.

    Threads: with settings.intra_threads = n every session runs on n threads. With None (automatic)
    each graph has a one-thread session and, on the CPU provider with more than one core, a session
    on all cores (created on first use) for runs over WIDE_ENCODER_TOKENS source tokens or
    WIDE_DECODER_ROWS decoder rows and more. `encoder_for()` / `decoder_for()` pick one.
    """

    def __init__(
        self,
        model_dir: Path | str,
        variant: str | None = None,
        settings: SessionSettings | None = None,
        verify: bool = True,
    ):
        self.model_dir = Path(model_dir)
        self.config: ModelPackageConfig = read_config(self.model_dir)
        settings = settings or SessionSettings(resolve_providers(["cpu"]))
        providers = [p for p, _ in settings.providers]
        self.available = installed_variants(self.model_dir, self.config)
        variant = variant or choose_variant(self.config, providers, self.available)
        check_variant(self.config, variant, providers, self.available)
        self.variant = variant
        files = self.config.variants[variant]
        if verify:
            verify_files(self.model_dir, [files.encoder, files.decoder], check_hash=False)
        self._settings, self._verify, self._files = settings, verify, files
        self._align = None
        self.encoder = self._load(files.encoder, settings, verify, settings.intra_threads or 1)
        self.decoder = self._load(files.decoder, settings, verify, settings.intra_threads or 1)
        self._wide_sessions: dict[str, ort.InferenceSession] = {}
        # Only where ORT's CPU kernels do the work: other providers (OpenVINO, CUDA) run their own
        # threads, and a second session would only compile the graph twice.
        cpu_first = settings.providers[0][0] == "CPUExecutionProvider"
        self._wide = settings.intra_threads is None and cpu_first and (os.cpu_count() or 1) > 1
        self._lock = threading.Lock()
        io, n = self.config.io, self.config.dims.n_decoder_layers
        self.n_layers = n
        self.enc_out_names = io.encoder_outputs(n)
        self.dec_in_names = io.decoder_inputs(n)
        self.dec_out_names = io.decoder_outputs(n)
        self._check_io()
        # The alignment layer's attention at each step (format 7): greedy alignments need no
        # second pass through the alignment graph. None in packages exported before it.
        self.step_attention = (
            io.alignment_attention
            if io.alignment_attention in {o.name for o in self.decoder.get_outputs()}
            else None
        )
        # Format 8 decoders with a shortlist take candidate inputs (empty: the whole vocabulary).
        inputs = {i.name for i in self.decoder.get_inputs()}
        self.candidate_names = (
            [io.candidate_ids, io.candidate_rows, io.candidate_bias]
            if io.candidate_ids in inputs
            else []
        )
        # A shortlist head's per-batch state (decoders shortlisted from 2026-12-07 on): optional
        # inputs that the first step of a batch returns as outputs, fed back while the batch's
        # candidates stay, so that later steps do not gather the same weight rows again.
        overridable = {i.name for i in self.decoder.get_overridable_initializers()}
        count = 0
        while self.candidate_names and io.state_input(count) in overridable:
            count += 1
        self.state_names = [io.state_input(i) for i in range(count)]
        self.state_out_names = [io.state_output(i) for i in range(count)]
        self.shortlist = None
        if self.candidate_names and self.config.shortlist is not None:
            from .shortlist import Shortlist

            name = self.config.shortlist.file
            if verify:
                verify_files(self.model_dir, [name])
            self.shortlist = Shortlist.load(self.model_dir / name)
        present = self.dec_out_names[1 : 1 + 2 * n]
        self._full_outputs = [io.log_probs, *present]
        self._top_outputs = [*present, io.top_log_probs, io.top_ids]

    def align_session(self, tokens: int = 0) -> ort.InferenceSession:
        """The alignment graph (loaded on first use: only when alignments are asked for), for a run
        over `tokens` (batch x tgt_len) target positions: like the encoder, a run over many goes to
        a session on all cores."""
        if not self._files.align:
            raise ModelError(
                f"this package has no alignment graph for its {self.variant} variant: re-export it "
                "with this traductor"
            )
        if self._align is None:
            with self._lock:
                if self._align is None:
                    if self._verify:
                        verify_files(self.model_dir, [self._files.align], check_hash=False)
                    self._align = self._load(
                        self._files.align,
                        self._settings,
                        self._verify,
                        self._settings.intra_threads or 1,
                    )
        if self._wide and tokens >= WIDE_ENCODER_TOKENS:
            return self._wide_session(self._files.align)
        return self._align

    def alignment_weights(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        target_ids: np.ndarray,
        cross: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Cross-attention of teacher-forced target_ids (batch, tgt_len; the start token first) ->
        (batch, layers, heads, tgt_len, src_len). cross: encode(input_ids, attention_mask) when
        the caller has it already (the decoding's), else it is computed here."""
        session = self.align_session(target_ids.size)
        if cross is None:
            cross = self.encode(input_ids, attention_mask)
        feeds = {
            "target_ids": target_ids,
            self.config.io.attention_mask: attention_mask,
            **dict(zip(self.enc_out_names, cross)),
        }
        # Graphs that stop at the alignment layer take only the cross K/V up to it.
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]

    def encoder_for(self, tokens: int) -> ort.InferenceSession:
        """The encoder session for a batch of `tokens` (batch x src_len) source positions."""
        return (
            self._wide_session(self._files.encoder)
            if self._wide and tokens >= WIDE_ENCODER_TOKENS
            else self.encoder
        )

    def decoder_for(self, rows: int) -> ort.InferenceSession:
        """The decoder session for a step over `rows` running rows."""
        return (
            self._wide_session(self._files.decoder)
            if self._wide and rows >= WIDE_DECODER_ROWS
            else self.decoder
        )

    def _wide_session(self, name: str) -> ort.InferenceSession:
        if name not in self._wide_sessions:
            with self._lock:
                if name not in self._wide_sessions:
                    self._wide_sessions[name] = self._load(name, self._settings, self._verify, 0)
        return self._wide_sessions[name]

    def _load(
        self, name: str, settings: SessionSettings, verify: bool, threads: int
    ) -> ort.InferenceSession:
        path = self.model_dir / name
        data = path.read_bytes()
        if verify:
            expected = json.loads((self.model_dir / MANIFEST_FILE).read_text())["files"][name][
                "sha256"
            ]
            if hashlib.sha256(data).hexdigest() != expected:
                raise ModelError(
                    f"{name} does not match its sha256 in manifest.json: the file is corrupt or "
                    "was changed"
                )
        if not is_ort_format(data):  # ORT-format files are flatbuffers with no external data
            check_external_data(data, name, self.model_dir)
        return _session(data, name, self.model_dir, settings, threads)

    def _check_io(self) -> None:
        enc_in = {i.name for i in self.encoder.get_inputs()}
        want_enc = {self.config.io.input_ids, self.config.io.attention_mask}
        if want_enc - enc_in or set(self.enc_out_names) - {
            o.name for o in self.encoder.get_outputs()
        }:
            raise ModelError("encoder graph inputs/outputs do not match config.json's io names")
        if set(self.dec_in_names) - {i.name for i in self.decoder.get_inputs()} or set(
            self.dec_out_names
        ) - {o.name for o in self.decoder.get_outputs()}:
            raise ModelError("decoder graph inputs/outputs do not match config.json's io names")

    @property
    def providers(self) -> list[str]:
        return self.decoder.get_providers()

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        """(batch, src_len) int64 ids and mask -> [key_cross_0, value_cross_0, ...], each
        (batch, heads, src_len, head_dim).

        Rows are encoded in groups of one padded length (their own length rounded up to
        source_pad_multiple), so a short source in a batch with a long one costs what it costs
        alone; each group's K/V are written into the batch's tensors, zero beyond its padded length
        (those positions are masked in the decoder).
        """
        io = self.config.io
        width = input_ids.shape[1]
        own = np.minimum(
            padded_length(attention_mask.sum(axis=1), self.config.decoding.source_pad_multiple),
            width,
        )
        lengths = np.unique(own)
        if lengths.size <= 1:
            encoder = self.encoder_for(input_ids.size)
            return encoder.run(
                self.enc_out_names, {io.input_ids: input_ids, io.attention_mask: attention_mask}
            )
        out: list[np.ndarray] | None = None
        for length in lengths.tolist():
            rows = np.flatnonzero(own == length)
            ids, mask = input_ids[rows, :length], attention_mask[rows, :length]
            part = self.encoder_for(ids.size).run(
                self.enc_out_names, {io.input_ids: ids, io.attention_mask: mask}
            )
            if out is None:
                out = [
                    np.zeros((input_ids.shape[0], p.shape[1], width, p.shape[3]), dtype=p.dtype)
                    for p in part
                ]
            for o, p in zip(out, part):
                o[rows, :, :length] = p
        return out

    def empty_past(self, batch: int) -> list[np.ndarray]:
        d = self.config.dims
        return [
            np.zeros((batch, d.n_heads, 0, d.head_dim), dtype=np.float32)
            for _ in range(2 * self.n_layers)
        ]

    def step(
        self,
        tokens: np.ndarray,
        position: int | np.ndarray,
        attention_mask: np.ndarray,
        past: list[np.ndarray],
        cross: list[np.ndarray],
        top_k: int | None = None,
        candidates=None,
        state=None,
    ):
        """tokens (rows, 1) at absolute `position` -> (log-probs (rows, vocab), present self K/V),
        or with top_k: ((top log-probs (rows, k), top ids (rows, k)), present self K/V). `position`
        may be an int64 array, a position per row (continuous.supports_rows_at_different_steps).
        candidates: shortlist.Candidates of the batch's sentences (with top_k only), None for the
        whole vocabulary. state: a shortlist.StepState that belongs to these candidates: filled by
        the first step that scores them, fed back by the next ones (None: each step gathers it)."""
        position = (
            position if isinstance(position, np.ndarray) else np.array([position], dtype=np.int64)
        )
        feeds = dict(
            zip(
                self.dec_in_names,
                [
                    tokens,
                    position,
                    attention_mask,
                    *past,
                    *cross,
                    np.array([top_k or 1], dtype=np.int64),
                ],
            )
        )
        outputs = self._top_outputs
        if self.candidate_names:
            if candidates is None or top_k is None:
                from .shortlist import Candidates

                candidates = Candidates.empty(attention_mask.shape[0])
            feeds.update(
                zip(self.candidate_names, (candidates.ids, candidates.rows, candidates.bias))
            )
            if state is None or not self.state_names or not candidates.ids.size:
                state = None
            elif state.values is None:
                outputs = [*outputs, *self.state_out_names]
            else:
                feeds.update(zip(self.state_names, state.values))
        decoder = self.decoder_for(tokens.shape[0])
        if top_k is None:
            out = decoder.run(self._full_outputs, feeds)
            return out[0], out[1:]
        out = decoder.run(outputs, feeds)
        if len(outputs) > len(self._top_outputs):
            state.values, out = out[len(self._top_outputs) :], out[: len(self._top_outputs)]
        return (out[-2], out[-1]), out[:-2]


__all__ = [
    "OnnxSeq2Seq",
    "SessionSettings",
    "resolve_providers",
    "choose_variant",
    "PROVIDER_ALIASES",
]
