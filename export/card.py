"""MODEL_CARD.md: what the package is, its variants, and the figures its gates measured."""

from __future__ import annotations

import onnxruntime as ort

from traductor.runtime.machine import cpu_summary
from traductor.runtime.package import ModelPackageConfig

from .gates import PARITY_SHAPES

_INT8_NOTE = (
    " The int8 variant scales\n"
    "activations per row and stores 7-bit weights, so its integer products are exact on every"
    " x86-64 CPU\n(AVX2-only CPUs included: no saturating int8 path) and a sentence's translation"
    " does not depend on its batch."
)


def model_card(
    pkg: ModelPackageConfig,
    intro: str,
    checks: dict,
    sizes: dict[str, int],
    quality: list[dict] = (),
    test=None,
) -> str:
    """The card: `intro` (from the front end), the variants table, parity, the quality table."""
    rows = "\n".join(
        f"| {name} | {v.quantization} | {sizes[name] / 1e6:.1f} MB | "
        f"{checks[name].get('greedy_identical', '-')} | "
        f"{_pct(checks[name].get('token_agreement'))} | "
        f"{'-' if v.bleu is None else f'{v.bleu:.2f}'} |"
        for name, v in pkg.variants.items()
    )
    header = (
        "| variant | quantization | size "
        "| greedy dev sentences identical to PyTorch (fp32) / to fp32 (int8) "
        f"| next-token agreement with fp32 | test BLEU, beam {pkg.decoding.beam_size} |"
    )
    parity = (
        f"fp32 parity with PyTorch: max |log-prob diff| {checks['fp32']['parity_max_diff']:.2e} "
        f"over shapes (batch, src_len, past_len, rows per sentence) {PARITY_SHAPES}."
    )
    measured = f"Figures measured on {cpu_summary()}, onnxruntime {ort.__version__}."
    note = _INT8_NOTE if "int8" in pkg.variants else ""
    return f"""# Model card: {pkg.source_language} -> {pkg.target_language}

{intro}
## Variants

{header}
|---|---|---|---|---|---|
{rows}

{parity}
{measured}{note}
{_quality_table(quality, test)}"""


def _quality_table(rows: list[dict], test) -> str:
    if not rows:
        return ""
    n = rows[0]["sentences"]
    lines = [
        f"\n## Quality on `{test}` ({n} sentences, sacrebleu defaults, "
        "measured through the runtime)\n",
        "| variant | decoding | BLEU | chrF | seconds (this machine) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        dec = "greedy" if r["beam"] == 1 else f"beam {r['beam']}"
        lines.append(
            f"| {r['variant']} | {dec} | {r['bleu']:.2f} | {r['chrf']:.2f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"
