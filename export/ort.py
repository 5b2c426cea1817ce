"""ORT-format copies of a package's graphs, for ONNX Runtime Mobile and minimal (reduced) builds.

`traductor export --ort` / `traductor convert marian --ort` add, for each variant V, a variant
"V-ort" whose graphs are V's after ONNX Runtime's optimizations, saved in its flatbuffer format
(what onnxruntime.tools.convert_onnx_models_to_ort writes, in its default "Fixed" style), and
required_operators.config, the operators a reduced build (build.py --include_ops_by_config) needs.
The ORT-format variant must give the .onnx variant's greedy tokens exactly, or it is not written.

Needs onnxruntime only (no torch, no onnx): the runtime tests convert the tiny model with it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnxruntime as ort

from traductor.runtime.onnx_model import CPU_DISABLED_OPTIMIZERS
from traductor.runtime.package import (
    CONFIG_FILE,
    ORT_OPERATORS_FILE,
    ORT_SUFFIX,
    ModelError,
    ModelPackageConfig,
)


def ort_file_name(onnx_name: str) -> str:
    """encoder.int8.onnx -> encoder.int8.ort"""
    return str(Path(onnx_name).with_suffix(".ort"))


def convert_graph(onnx_path: Path, ort_path: Path) -> None:
    """One .onnx graph -> ORT format, optimized as convert_onnx_models_to_ort does by default: all
    levels, without the NCHWc layout (a convolution layout for x86 that would not run on ARM) and
    without the fusions the runtime leaves out on the CPU (so the .ort decodes as the .onnx)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(ort_path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.log_severity_level = 3
    try:
        ort.InferenceSession(
            str(onnx_path),
            sess_options=so,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=["NchwcTransformer", *CPU_DISABLED_OPTIMIZERS],
        )
    except Exception as e:  # onnxruntime's own exception types
        raise ModelError(
            f"{onnx_path.name} could not be converted to ORT format: {str(e).splitlines()[0]}"
        ) from e


def add_ort_variants(model_dir: Path, pkg: ModelPackageConfig) -> ModelPackageConfig:
    """Convert every variant's graphs in model_dir and write ORT_OPERATORS_FILE -> the config with
    a V-ort variant beside each V (same figures: the gate checks that it decodes identically)."""
    variants = dict(pkg.variants)
    written: list[Path] = []
    for name, v in pkg.variants.items():
        if name.endswith(ORT_SUFFIX):
            continue
        for onnx_name in v.files:
            target = model_dir / ort_file_name(onnx_name)
            if target not in written:
                convert_graph(model_dir / onnx_name, target)
                written.append(target)
        variants[name + ORT_SUFFIX] = replace(
            v,
            encoder=ort_file_name(v.encoder),
            decoder=ort_file_name(v.decoder),
            align=ort_file_name(v.align) if v.align else None,
        )
    write_operator_config(written, model_dir / ORT_OPERATORS_FILE)
    return replace(pkg, variants=variants)


def write_operator_config(ort_files: list[Path], out: Path) -> None:
    """The reduced-build config (domain;opset;op,op,...) of the ORT-format graphs, naming them by
    file name only (onnxruntime's writer would record the staging directory's absolute paths)."""
    from onnxruntime.tools.ort_format_model import create_config_from_models

    create_config_from_models(ort_files, out, False)
    names = {str(p): p.name for p in ort_files}
    lines = out.read_text().splitlines()
    out.write_text(
        "\n".join(
            f"# - {names.get(line[4:], line[4:])}" if line.startswith("# - ") else line
            for line in lines
        )
        + "\n"
    )


def add_checked_ort_variants(
    model_dir: Path, pkg: ModelPackageConfig, checks: dict, src: list[list[int]]
) -> tuple[ModelPackageConfig, dict]:
    """add_ort_variants, then the gate: each V-ort variant's greedy tokens on the dev sentences
    `src` must equal V's, every one (it is the same graph, saved differently) -> (config, checks
    with a row per V-ort)."""
    from traductor.runtime.onnx_model import OnnxSeq2Seq
    from traductor.runtime.quality import ort_greedy

    from .gates import ExportError

    pkg = add_ort_variants(model_dir, pkg)
    (model_dir / CONFIG_FILE).write_text(pkg.to_json())  # the gate loads the package as users do
    checks = dict(checks)
    for name in [n for n in pkg.variants if n.endswith(ORT_SUFFIX)]:
        base = name[: -len(ORT_SUFFIX)]
        want = ort_greedy(OnnxSeq2Seq(model_dir, variant=base, verify=False), src)
        got = ort_greedy(OnnxSeq2Seq(model_dir, variant=name, verify=False), src)
        same = sum(a == b for a, b in zip(want, got))
        if same < len(src):
            raise ExportError(
                f"the ORT-format {name} variant differs from {base} on {len(src) - same} of "
                f"{len(src)} dev sentences: package not written"
            )
        checks[name] = {"greedy_identical": f"{same}/{len(src)} (as {base})"}
    return pkg, checks
