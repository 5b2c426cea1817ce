"""The model package: a directory the runtime loads and `traductor export` writes.

This module is the one definition of its format. The exporter imports it to write, the runtime to
read, so the two cannot drift apart.

    MODEL_DIR/
      config.json        ModelPackageConfig below
      manifest.json      sha256 and size of every other file
      tokenizer.json     the `tokenizers` tokenizer the model was trained with
      encoder*.onnx      input ids + mask -> cross-attention K/V of every decoder layer
      decoder*.onnx      one step with a KV cache -> log-probabilities + present K/V
      *.ort              optional: the same graphs in ORT format (variants named "<variant>-ort"),
      required_operators.config   and the operators a reduced ONNX Runtime build needs for them
      MODEL_CARD.md      data, training, quality
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = "traductor-model"
# 2: beams share cross K/V; 3: TopK output in the decoder; 4: decoder on ORT's fused attention
# operators (com.microsoft), whose self-attention cache may be one buffer bound as past and present;
# 5: int8 with per-row activation scales (opset 21, MatMulIntegerToFloat), sources padded to
# decoding.source_pad_multiple; 6: a source and a target tokenizer (converted OPUS-MT models),
# target vocabulary size, language tags, decoding.min_length, suppressed tokens; 7: the decoder
# outputs the alignment layer's cross-attention (io.alignment_attention); 8: an optional vocabulary
# shortlist (config.shortlist, shortlist.npz) and a decoder whose output projection can run over
# candidate tokens (io.candidate_*). Versions 5 to 7 load.
FORMAT_VERSION = 8
READABLE_VERSIONS = (5, 6, 7, 8)
CONFIG_FILE, MANIFEST_FILE, TOKENIZER_FILE, CARD_FILE = (
    "config.json",
    "manifest.json",
    "tokenizer.json",
    "MODEL_CARD.md",
)
SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE = (
    "source.tokenizer.json",
    "target.tokenizer.json",
)  # two-tokenizer packages
INT8_ROWS = "int8-rows"  # Variant.quantization of int8 graphs with per-row activation scales
# ORT format (ONNX Runtime Mobile and minimal builds): variant V's graphs, optimized and saved as
# flatbuffers, form variant V + ORT_SUFFIX; ORT_OPERATORS_FILE lists the operators they use.
ORT_SUFFIX = "-ort"
ORT_OPERATORS_FILE = "required_operators.config"
SHORTLIST_FILE = "shortlist.npz"  # the lexical shortlist (ShortlistSettings)


class TraductorError(Exception):
    """Base of every error a user causes and can fix: bad input, options, files or models. Front
    ends map the family, not class names: the CLI prints one line and exits 2, the server says 400.
    """


class ModelError(TraductorError):
    """A model directory that cannot be used: missing, corrupt, or of an unknown format."""


class OrtFormatError(ModelError):
    """An ORT-format graph this onnxruntime cannot read (written by a newer one, or damaged)."""


class InputError(TraductorError, ValueError, TypeError):
    """Bad input or options (a ValueError or TypeError to callers that catch those)."""


@dataclass(frozen=True)
class Dimensions:
    vocab_size: int
    d_model: int
    n_heads: int
    head_dim: int
    n_encoder_layers: int
    n_decoder_layers: int
    max_len: int  # longest source (and target) in subwords, end token included
    pre_norm: bool = False
    target_vocab_size: int | None = (
        None  # the decoder's own vocabulary, when it is not the source's
    )

    @property
    def output_vocab_size(self) -> int:
        return self.target_vocab_size or self.vocab_size


@dataclass(frozen=True)
class SpecialTokens:
    pad_id: int
    bos_id: int  # the start token fed to the decoder at step 0
    eos_id: int
    unk_id: int


@dataclass(frozen=True)
class IONames:
    """Graph input/output names. Per-layer names are templates with `{i}` for the layer index."""

    input_ids: str = "input_ids"  # encoder: (batch, src_len); decoder: (rows, 1), int64
    attention_mask: str = "attention_mask"  # (batch, src_len) int64, 1 = real token, 0 = padding
    position: str = "position"  # decoder: (1,) int64, absolute position of the new token
    key_cross: str = (
        "key_cross_{i}"  # encoder output / decoder input, (batch, heads, src_len, head_dim)
    )
    value_cross: str = "value_cross_{i}"
    # Self-attention cache, two ways: past (rows, heads, past_len, head_dim) -> present with
    # past_len + 1 entries; or one preallocated buffer (rows, heads, capacity, head_dim) bound as
    # both past and present, where the step writes entry `position` in place (later ones ignored).
    past_key_self: str = "past_key_self_{i}"  # decoder input
    past_value_self: str = "past_value_self_{i}"
    present_key_self: str = (
        "present_key_self_{i}"  # decoder output, (rows, heads, past_len + 1, head_dim)
    )
    present_value_self: str = "present_value_self_{i}"
    log_probs: str = "log_probs"  # decoder output, (rows, vocab) float32
    top_k: str = "top_k"  # decoder input, (1,) int64: how many best tokens per row to return
    top_log_probs: str = "top_log_probs"  # decoder output, (rows, top_k) float32, best first
    top_ids: str = "top_ids"  # decoder output, (rows, top_k) int64
    # decoder output, (batch, heads, group, src_len): the cross-attention weights of the alignment
    # layer at this step. Packages exported before it lack it (their alignments use align.onnx).
    alignment_attention: str = "alignment_attention"
    # Decoder inputs of packages with a shortlist (format 8). candidate_ids (n,) int64: the union of
    # the batch's candidate tokens, ascending; candidate_rows (batch, width) int64: each sentence's
    # own candidates as positions in candidate_ids, ascending, padded; candidate_bias (batch, width)
    # float32: 0 at a candidate, -inf at padding. With n > 0 the step scores only each row's own
    # candidates (log_probs is then (rows, width), in candidate_rows order; top_ids are token ids);
    # with n = 0 (empty inputs) the whole vocabulary, as without them.
    candidate_ids: str = "candidate_ids"
    candidate_rows: str = "candidate_rows"
    candidate_bias: str = "candidate_bias"
    # rows = batch * group: each run of `group` consecutive decoder rows (the beams of one sentence)
    # shares that sentence's cross K/V and mask. Greedy decoding has group 1.

    def layer(self, template: str, i: int) -> str:
        return getattr(self, template).format(i=i)

    # A shortlist head's per-batch state (docs/format.md): optional decoder inputs
    # candidate_state_0.. (each defaults to an empty initializer) and outputs
    # new_candidate_state_0..; the names are fixed, not configurable.
    @staticmethod
    def state_input(i: int) -> str:
        return f"candidate_state_{i}"

    @staticmethod
    def state_output(i: int) -> str:
        return f"new_candidate_state_{i}"

    def encoder_outputs(self, n_layers: int) -> list[str]:
        return [
            n
            for i in range(n_layers)
            for n in (self.layer("key_cross", i), self.layer("value_cross", i))
        ]

    def decoder_inputs(self, n_layers: int) -> list[str]:
        past = [
            n
            for i in range(n_layers)
            for n in (self.layer("past_key_self", i), self.layer("past_value_self", i))
        ]
        return [
            self.input_ids,
            self.position,
            self.attention_mask,
            *past,
            *self.encoder_outputs(n_layers),
            self.top_k,
        ]

    def decoder_outputs(self, n_layers: int) -> list[str]:
        present = [
            n
            for i in range(n_layers)
            for n in (self.layer("present_key_self", i), self.layer("present_value_self", i))
        ]
        return [self.log_probs, *present, self.top_log_probs, self.top_ids]


def padded_length(n, multiple: int = 1):
    """n source tokens (an int or an integer array) rounded up to a multiple: the length a sentence
    is encoded at on its own."""
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class DecodingDefaults:
    beam_size: int = 4
    length_penalty: float = 1.0
    max_length_ratio: float = 2.0  # target may be up to ratio * source subwords ...
    max_length_extra: int = 10  # ... plus this many
    # Sources are padded to a multiple of this: alone, to their own length rounded up; in a batch,
    # to the batch's longest, which is exact (see Translator.translate_ids).
    source_pad_multiple: int = 8
    # 1: the end token may not come first (no empty translations); 0: it may (as transformers'
    # generate() for converted models).
    min_length: int = 1


@dataclass(frozen=True)
class TokenizerFiles:
    """The `tokenizers` JSON files: one shared file for this project's own models (joint BPE), two
    for converted ones whose source and target sides tokenize differently (OPUS-MT)."""

    source: str = TOKENIZER_FILE
    target: str = TOKENIZER_FILE


@dataclass(frozen=True)
class Variant:
    encoder: str  # file name inside the package
    decoder: str
    quantization: str = (
        "none"  # "none" or "int8-rows" (per-row int8 activations, 7-bit per-column weights)
    )
    greedy_agreement: float | None = None  # share of dev sentences whose greedy tokens equal fp32's
    bleu: float | None = None  # on the held-out test set, where measured
    align: str | None = (
        None  # the alignment graph (cross-attention of a whole translation), if exported
    )

    @property
    def files(self) -> list[str]:
        return [self.encoder, self.decoder] + ([self.align] if self.align else [])


@dataclass(frozen=True)
class AlignmentSettings:
    """Which cross-attention gives word alignments (chosen by measurement, see README): the mean of
    `heads` (None = all) of decoder layer `layer`, at the row that predicts each target token."""

    layer: int = -1
    heads: list[int] | None = None


@dataclass(frozen=True)
class ShortlistSettings:
    """A lexical vocabulary shortlist (shortlist.npz): for each source token the `per_token` target
    tokens likeliest to appear in its translations, plus the `frequent` most frequent target tokens.
    A sentence's candidates are the frequent tokens and those of its own source tokens, so its
    translation never depends on the batch (see runtime/shortlist.py)."""

    file: str = SHORTLIST_FILE
    per_token: int = 100
    frequent: int = 100
    corpus: str = ""  # what it was built from
    # The gate's figures (export/shortlist.py): share of test sentences translated identically with
    # and without the shortlist, and the BLEU change, per variant and search ("int8 beam4": {...}).
    gate: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPackageConfig:
    dims: Dimensions
    special_tokens: SpecialTokens
    source_language: str
    target_language: str
    variants: dict[str, Variant]
    default_variant: str
    io: IONames = field(default_factory=IONames)
    decoding: DecodingDefaults = field(default_factory=DecodingDefaults)
    tokenizers: TokenizerFiles = field(default_factory=TokenizerFiles)
    # Multi-target models: target language code -> the source token that asks for it (">>spa<<").
    language_tags: dict[str, str] = field(default_factory=dict)
    converted_from: str | None = None  # e.g. "Helsinki-NLP/opus-mt-en-es (transformers MarianMT)"
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    shortlist: ShortlistSettings | None = None  # format 8: a vocabulary shortlist, if built
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> ModelPackageConfig:
        if d.get("format") != FORMAT:
            raise ModelError(f"not a traductor model (config.json format is {d.get('format')!r})")
        version = d.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ModelError(
                f"unsupported model format version {version!r}; this traductor reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        try:
            cfg = cls(
                dims=Dimensions(**d["dims"]),
                special_tokens=SpecialTokens(**d["special_tokens"]),
                source_language=d["source_language"],
                target_language=d["target_language"],
                variants={k: Variant(**v) for k, v in d["variants"].items()},
                default_variant=d["default_variant"],
                io=IONames(**d.get("io", {})),
                decoding=DecodingDefaults(**d.get("decoding", {})),
                tokenizers=TokenizerFiles(**d.get("tokenizers", {})),
                language_tags=dict(d.get("language_tags", {})),
                converted_from=d.get("converted_from"),
                alignment=AlignmentSettings(**d.get("alignment", {})),
                shortlist=ShortlistSettings(**d["shortlist"]) if d.get("shortlist") else None,
                format=d["format"],
                format_version=version,
            )
        except (KeyError, TypeError) as e:
            raise ModelError(f"config.json is missing or has a malformed field: {e}") from e
        names = [("tokenizers.source", cfg.tokenizers.source)]
        names += [("tokenizers.target", cfg.tokenizers.target)]
        if cfg.shortlist is not None:
            names.append(("shortlist.file", cfg.shortlist.file))
        for side, name in names:
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise ModelError(
                    f"config.json: {side} must be a file name inside the package, got {name!r}"
                )
        m = cfg.decoding.min_length
        if not isinstance(m, int) or isinstance(m, bool) or m not in (0, 1):
            raise ModelError(f"config.json: decoding.min_length must be 0 or 1, got {m!r}")
        multiple = cfg.decoding.source_pad_multiple
        if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
            raise ModelError(
                "config.json: decoding.source_pad_multiple must be an integer >= 1, got "
                f"{multiple!r}"
            )
        return cfg


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(model_dir: Path) -> dict:
    files = {
        p.name: {"sha256": sha256_of(p), "size": p.stat().st_size}
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_config(model_dir: Path | str) -> ModelPackageConfig:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model directory not found: {model_dir}")
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir} is not a traductor model: no {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return ModelPackageConfig.from_dict(data)


def installed_variants(model_dir: Path, config: ModelPackageConfig) -> list[str]:
    """The variants present in model_dir. A package may carry only some of the variants its
    config.json describes: the wheel ships the default model's int8 variant alone, and a source
    checkout rebuilds fp32 from the tracked weights (`make fp32`). A variant with one of its two
    graphs present counts as present, so that loading it reports the missing file as damage."""
    return [
        name
        for name, v in config.variants.items()
        if (model_dir / v.encoder).is_file() or (model_dir / v.decoder).is_file()
    ]


def verify_files(model_dir: Path, names: list[str], check_hash: bool = True) -> None:
    """Every named file exists, has its manifest size and (optionally) its sha256."""
    manifest_path = model_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelError(f"{model_dir} has no {MANIFEST_FILE}")
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelError(f"{manifest_path} is malformed: {e}") from e
    for name in names:
        path = model_dir / name
        if not path.is_file():
            raise ModelError(f"{model_dir} is missing {name}")
        entry = files.get(name)
        if entry is None:
            raise ModelError(f"{name} is not listed in {MANIFEST_FILE}")
        size = path.stat().st_size
        if size != entry["size"]:
            raise ModelError(
                f"{name} is {size} bytes, the manifest says {entry['size']}: the file is truncated "
                "or was changed"
            )
        if check_hash and sha256_of(path) != entry["sha256"]:
            raise ModelError(
                f"{name} does not match its sha256 in {MANIFEST_FILE}: the file is corrupt or was "
                "changed"
            )


# -- ORT format: a flatbuffer whose root table (fbs.InferenceSession) starts with ort_version ------


def is_ort_format(model_bytes: bytes) -> bool:
    """Whether the bytes are an ORT-format graph (flatbuffer identifier "ORTM"), not ONNX."""
    return len(model_bytes) >= 8 and model_bytes[4:8] == b"ORTM"


def ort_format_version(model_bytes: bytes) -> str | None:
    """The ORT format version an ORT-format file declares ("6" from onnxruntime 1.32), None if the
    flatbuffer is too damaged to say. Read here so that a runtime too old for the file can say
    which version it is given."""
    span = ort_version_span(model_bytes)
    if span is None:
        return None
    try:
        return model_bytes[span[0] : span[1]].decode("ascii")
    except UnicodeDecodeError:
        return None


def ort_version_span(model_bytes: bytes) -> tuple[int, int] | None:
    """(start, end) of the ort_version string, field 0 of the root table, in an ORT-format file."""
    import struct

    try:
        root = struct.unpack_from("<I", model_bytes, 0)[0]
        vtable = root - struct.unpack_from("<i", model_bytes, root)[0]
        if struct.unpack_from("<H", model_bytes, vtable)[0] < 6:
            return None  # the table has no field 0
        field = struct.unpack_from("<H", model_bytes, vtable + 4)[0]
        if field == 0:
            return None
        at = root + field
        start = at + struct.unpack_from("<I", model_bytes, at)[0]
        length = struct.unpack_from("<I", model_bytes, start)[0]
    except struct.error:
        return None
    if length > 16 or start + 4 + length > len(model_bytes):
        return None
    return start + 4, start + 4 + length


# -- the ONNX protobuf, read without the onnx package ----------------------------------------------
# Kept, not left to onnxruntime: before 1.26 it reads external data from ../, absolute and symlinked
# paths (measured on 1.21.1 and 1.23.2; we allow >= 1.20), and onnx is no runtime dependency.
# Field numbers of onnx.proto: ModelProto.graph, GraphProto.node/initializer, NodeProto.input/
# op_type/attribute, AttributeProto.t/g/tensors/graphs, TensorProto.dims/data_type/float_data/
# int32_data/name/raw_data/external_data, StringStringEntryProto.key/value.
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_INIT = 7, 1, 5
_NODE_INPUT, _NODE_OP, _NODE_ATTR = 1, 4, 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_T_DIMS, _T_TYPE, _T_FLOATS, _T_INT32S, _T_NAME, _T_RAW, _T_EXTERNAL = 1, 2, 4, 5, 8, 9, 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_FLOAT, _FLOAT16 = 1, 10  # TensorProto.DataType


def _fields(buf: bytes | memoryview):
    """Yield (field_number, wire_type, value) of one protobuf message; value is bytes for wire type
    2, an int for 0, None for the fixed-size types."""
    buf = memoryview(buf)
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ModelError(f"malformed ONNX file (protobuf wire type {wire})")
        if i > n:
            raise ModelError("malformed ONNX file (truncated protobuf field)")
        yield field_no, wire, value


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise ModelError("malformed ONNX file (truncated varint)")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _packed_varints(buf: memoryview) -> list[int]:
    i, values = 0, []
    while i < len(buf):
        x, i = _varint(buf, i)
        values.append(x)
    return values


def _text(buf: memoryview) -> str:
    return bytes(buf).decode("utf-8", "replace")


def _external_data(tensor) -> list[tuple[str | None, str]]:
    """A TensorProto's external_data (key, value) entries ([] when its data is inside the graph)."""
    out = []
    for f, w, v in _fields(tensor):
        if f == _T_EXTERNAL and w == 2:
            entry = {ef: _text(ev) for ef, ew, ev in _fields(v) if ew == 2}
            out.append((entry.get(_ENTRY_KEY), entry.get(_ENTRY_VALUE, "")))
    return out


def _locations(tensor) -> list[str]:
    return [value for key, value in _external_data(tensor) if key == "location"]


def _inside(location: str, name: str, model_dir: Path) -> Path:
    """The file an external-data location names, refused unless it lies inside model_dir (after
    resolving symlinks)."""
    root = model_dir.resolve()
    target = (root / location).resolve()
    if Path(location).is_absolute() or root not in target.parents:
        raise ModelError(
            f"{name} refused: its external data {location!r} points outside the model directory"
        )
    return target


def _graph_locations(graph) -> list[str]:
    out = []
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == _GRAPH_INIT:
            out += _locations(v)
        elif f == _GRAPH_NODE:
            for nf, nw, nv in _fields(v):
                if nf != _NODE_ATTR or nw != 2:
                    continue
                for af, aw, av in _fields(nv):
                    if aw == 2 and af in (_ATTR_T, _ATTR_TENSORS):
                        out += _locations(av)
                    elif aw == 2 and af in (_ATTR_G, _ATTR_GRAPHS):
                        out += _graph_locations(av)
    return out


def external_data_locations(model_bytes: bytes) -> list[str]:
    """Every external-data file an ONNX model names (initializers, node attributes, subgraphs)."""
    out = []
    for f, w, v in _fields(model_bytes):
        if f == _MODEL_GRAPH and w == 2:
            out += _graph_locations(v)
    return out


def check_external_data(model_bytes: bytes, name: str, model_dir: Path) -> None:
    """Refuse a graph whose external data would be read from outside the model directory."""
    try:
        locations = external_data_locations(model_bytes)
    except ModelError as e:
        raise ModelError(f"{name} could not be loaded: {e}") from e
    for location in locations:
        _inside(location, name, model_dir)


# -- initializers (the embeddings map needs one matrix) --------------------------------------------


def graph_contents(model_bytes: bytes) -> tuple[list[tuple[str, list[str]]], dict[str, memoryview]]:
    """-> ([(op_type, inputs)] of the main graph's nodes, {initializer name: TensorProto bytes})."""
    nodes, inits = [], {}
    for f, w, v in _fields(model_bytes):
        if f != _MODEL_GRAPH or w != 2:
            continue
        for gf, gw, gv in _fields(v):
            if gw == 2 and gf == _GRAPH_NODE:
                op, inputs = "", []
                for nf, nw, nv in _fields(gv):
                    if nw == 2 and nf == _NODE_OP:
                        op = _text(nv)
                    elif nw == 2 and nf == _NODE_INPUT:
                        inputs.append(_text(nv))
                nodes.append((op, inputs))
            elif gw == 2 and gf == _GRAPH_INIT:
                names = (_text(tv) for tf, tw, tv in _fields(gv) if tf == _T_NAME and tw == 2)
                inits[next(names, "")] = gv
    return nodes, inits


def tensor_dims(tensor: memoryview) -> list[int]:
    dims = []
    for f, w, v in _fields(tensor):
        if f == _T_DIMS and w == 0:
            dims.append(v)
        elif f == _T_DIMS and w == 2:  # packed
            dims += _packed_varints(v)
    return dims


def tensor_array(tensor: memoryview, name: str, model_dir: Path):
    """A float32 or float16 TensorProto -> numpy float32 array (raw, typed or in-directory external
    data)."""
    import numpy as np

    dims, dtype, raw, floats, int32s = tensor_dims(tensor), _FLOAT, None, [], []
    for f, w, v in _fields(tensor):
        if f == _T_TYPE and w == 0:
            dtype = v
        elif f == _T_RAW and w == 2:
            raw = bytes(v)
        elif f == _T_FLOATS and w == 2:
            floats.append(bytes(v))
        elif f == _T_INT32S and w == 2:
            int32s += _packed_varints(v)
    if dtype not in (_FLOAT, _FLOAT16):
        raise ModelError(f"{name} is not a float32 or float16 tensor (data type {dtype})")
    np_type = np.dtype(np.float32 if dtype == _FLOAT else np.float16).newbyteorder("<")
    external = dict(_external_data(tensor))
    if external:
        with open(_inside(external.get("location", ""), name, model_dir), "rb") as fh:
            fh.seek(int(external.get("offset", 0)))
            raw = fh.read(int(np.prod(dims)) * np_type.itemsize)
    if raw is not None:
        values = np.frombuffer(raw, dtype=np_type)
    elif dtype == _FLOAT:
        values = np.frombuffer(b"".join(floats), dtype="<f4")
    else:  # float16 kept as the bit patterns in int32_data
        values = np.array(int32s, dtype=np.uint16).view(np.float16)
    if values.size != int(np.prod(dims)):
        raise ModelError(f"{name} holds {values.size} values for dims {dims}")
    return values.reshape(dims).astype(np.float32)
