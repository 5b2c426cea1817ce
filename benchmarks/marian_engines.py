"""OPUS-MT-sized Marian, same random weights, five inference engines, one interleaved run.

    .venv/bin/python benchmarks/marian_engines.py --out benchmarks/results/marian-engines
    # options: --sentences 64 (greedy b16 and beam4 b32) --b1-sentences 24 (greedy b1) --repeats 4
    #          --skip-optimum
    #          --engines pytorch,optimum,ct2-fp32,ct2-int8,traductor-fp32,traductor-int8
    #          --work /tmp/marian-bench (models, packages, venvs: never inside the repository)
    #          --rebuild

Writes results.md and results.json to --out (default benchmarks/results/marian-engines) and prints
the table; the model, the converted engines and every conversion's log go to --work.

What it measures
----------------
A random-weight MarianMT at OPUS-MT's size (d_model 512, 6+6 layers, 8 heads, ffn 2048, swish,
shared vocabulary of 58,101 entries, as opus-mt-es-en) is built in --work (config.json,
model.safetensors, source.spm, target.spm, vocab.json, tokenizer_config.json; marian_model.py).
Its SentencePiece models are small trained ones (source: trained on benchmarks/test-books.es.txt so
Spanish sources get realistic piece counts; target: the test fixture's synthetic English corpus);
vocab.json is padded with placeholder pieces to 58,101 entries, `<pad>` last (id 58,100) as in
OPUS-MT, so the embedding and output-projection matrices have OPUS-MT's shape, which is what decides
speed. Weights as in tests/marian_fixture.py (perturbed LayerNorms, random final_logits_bias,
init_std raised as the fixture's but scaled to d_model 512: 0.075) so logits are not flat; the pad
embedding row is zero (as in converted OPUS-MT checkpoints, and as CTranslate2's
start-from-zero-embedding assumes), and final_logits_bias of the end token (id 0) is -100, so no
engine ever ends a sentence early: every engine is given 32 new tokens and must produce exactly 32
per sentence (counted and reported). (-100, not -1e4: log-probs near -1e4 lose the 1e-4 precision
traductor's converter gate checks against transformers; -100 is still ~15 logit std below
anything.)

Engines, all on those weights, all with one thread:
  pytorch         transformers `generate` (eager, use_cache=True), torch.set_num_threads(1)
  optimum         Optimum's ONNX export (`ORTModelForSeq2SeqLM.from_pretrained(dir, export=True)`)
                  run with `generate`, ORT SessionOptions intra/inter_op_num_threads=1, in its own
                  venv (--work/venv-optimum: optimum-onnx pins transformers 4.57)
  ct2-fp32/int8   `ct2-transformers-converter` float32 / --quantization int8,
                  Translator(device="cpu", intra_threads=1, inter_threads=1), OMP_WAIT_POLICY=ACTIVE
  traductor-*     `traductor convert marian DIR --out PKG --int8`, Translator(variant=...,
                  intra_threads=1). On these random weights the converter's int8 gate refuses (94.5%
                  next-token agreement < 98%, and --accept-mismatch does not override that gate), so
                  traductor-fp32 is the gated fp32 package (convert without --int8) and
                  traductor-int8 a copy of it with the int8 graphs added by the converter's own
                  quantize_int8 (the call --int8 makes before its gate), labelled "ungated" in the
                  table. Every attempt's log lies in --work; logs of identical earlier commands are
                  reused (pass --rebuild to redo everything: about 20 more minutes).
  ct2-*-vmap, traductor-*-shortlist: run by benchmarks/marian_shortlist.py through this script's
                  children (use_vmap=True; a package with a shortlist, named per engine).

Every engine decodes the same source ids (MarianTokenizer, end token included; CTranslate2 gets the
same ids as pieces) in the same length-sorted batches, with max 32 new tokens, pad never generated,
forced end token off (transformers' ForcedEOS would spend step 32 on a forced `</s>`). Workloads:
greedy batch 1, greedy batch 16, beam 4 batch 32. Each measurement runs in a fresh child process;
load and one warm-up batch are excluded from the timing. Engines are interleaved (for each repeat,
each workload, each engine, the engine order rotated every repeat); the median of the repeats is
reported as tokens/s = generated tokens (32 per sentence; the best hypothesis for beam search) /
wall time. traductor decodes each batch as one (sources padded to the batch's longest, rounded up
to 8, as runtime/translator.py's translate_ids explains); its encoder runs the rows of each padded
length on their own, so a short source costs what it costs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# A sibling module (this script's folder is first on sys.path), standard library only at import,
# so the children run in the Optimum venv can import this script too.
from marian_model import DIMS, EOS_BIAS, INIT_STD, VOCAB_SIZE, build_marian

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENGINES = ["pytorch", "optimum", "ct2-fp32", "ct2-int8", "traductor-fp32", "traductor-int8"]
WORKLOADS = {"greedy b1": (1, 1), "greedy b16": (1, 16), "beam4 b32": (4, 32)}
NEW_TOKENS = 32
# For the converter's gates: short lines not among the benchmark sources (its beam-4 transformers
# reference runs one sentence at a time to 2 x source + 10 tokens, slow at this size).
DEV_SENTENCES = 12


# -- children: one engine, one workload ----------------------------------------------------------


def _generation_config(beam: int, pad: int):
    from transformers import GenerationConfig

    return GenerationConfig(
        num_beams=beam,
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=0,
        length_penalty=1.0,
        early_stopping=False,
        bad_words_ids=[[pad]],
        forced_eos_token_id=None,
        forced_bos_token_id=None,
        eos_token_id=0,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        num_return_sequences=1,
        use_cache=True,
    )


def _hf_runner(model, beam: int, pad: int):
    import torch

    gc = _generation_config(beam, pad)
    # generate() merges the model's generation config into ours: the forced end token goes there too
    model.generation_config.forced_eos_token_id = None
    model.config.forced_eos_token_id = None

    def run(batch):
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.inference_mode():
            seqs = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        out = []
        for row in seqs.tolist():
            row = row[1:]  # the decoder start token
            if 0 in row:  # the end token counts as generated (it never comes: bias)
                row = row[: row.index(0) + 1]
            out.append([t for t in row if t != pad])
        return out

    return run


def _child(spec: dict) -> dict:
    """Time one engine on one workload's batches: load, one warm-up batch, then every batch."""
    run = _runner(spec)
    batches = spec["batches"]
    run(batches[0])  # warm-up
    t0 = time.perf_counter()
    out = [h for b in batches for h in run(b)]
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "lengths": [len(h) for h in out], "hyps": out}


def _runner(spec: dict):
    """The engine of spec loaded, as a function from a batch of source ids to token lists."""
    engine, beam, pad = spec["engine"], spec["beam"], spec["pad"]
    if engine == "pytorch":
        import torch
        from transformers import MarianMTModel

        torch.set_num_threads(1)
        return _hf_runner(MarianMTModel.from_pretrained(spec["model_dir"]).eval(), beam, pad)
    if engine == "optimum":
        import onnxruntime as ort
        import torch
        from optimum.onnxruntime import ORTModelForSeq2SeqLM

        torch.set_num_threads(1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        model = ORTModelForSeq2SeqLM.from_pretrained(
            spec["optimum_dir"], session_options=so, provider="CPUExecutionProvider"
        )
        return _hf_runner(model, beam, pad)
    if engine.startswith("traductor"):
        return _traductor_runner(spec)
    if engine.startswith("ct2"):
        return _ct2_runner(spec)
    raise ValueError(f"unknown engine {engine}")


def _traductor_runner(spec: dict):
    from traductor.runtime import TranslationOptions, Translator

    engine = spec["engine"]
    # marian_shortlist.py names a package per engine (the -shortlist copies)
    package = (
        spec.get("packages", {}).get(engine)
        or spec["package_int8" if engine == "traductor-int8" else "package"]
    )
    tr = Translator(package, variant=engine.split("-")[1], intra_threads=1)
    if (tr.model.shortlist is not None) != engine.endswith("-shortlist"):
        raise RuntimeError(f"{engine}: {package} has shortlist {tr.model.shortlist is not None}")
    opts = TranslationOptions(beam_size=spec["beam"], batch_size=10_000, max_length=NEW_TOKENS)

    def run(batch):
        return [h[0].tokens for h in tr.translate_ids(batch, opts)]

    return run


def _ct2_runner(spec: dict):
    import ctranslate2

    ct = ctranslate2.Translator(
        spec["ct2_dir"][spec["engine"]], device="cpu", intra_threads=1, inter_threads=1
    )
    # -vmap (marian_shortlist.py): the directory's vmap.txt restricts each batch's target tokens
    use_vmap = spec["engine"].endswith("-vmap")
    pieces = spec["pieces"]
    index = {p: i for i, p in enumerate(pieces)}

    def run(batch):
        toks = [[pieces[i] for i in s] for s in batch]
        res = ct.translate_batch(
            toks,
            beam_size=spec["beam"],
            max_batch_size=0,
            max_decoding_length=NEW_TOKENS,
            length_penalty=1.0,
            return_scores=False,
            use_vmap=use_vmap,
        )
        return [[index[t] for t in r.hypotheses[0]] for r in res]

    return run


def _versions_child() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    got = {}
    for name in (
        "torch",
        "transformers",
        "onnxruntime",
        "optimum",
        "optimum-onnx",
        "ctranslate2",
        "traductor",
        "tokenizers",
        "numpy",
    ):
        try:
            got[name] = version(name)
        except PackageNotFoundError:
            pass
    return got


# -- parent ---------------------------------------------------------------------------------------


def _python_for(engine: str, optimum_python: Path) -> str:
    return str(optimum_python) if engine == "optimum" else sys.executable


def _env_for(engine: str) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    if engine.startswith("ct2"):
        env["OMP_WAIT_POLICY"] = "ACTIVE"  # slow on this AMD CPU otherwise (see compare_engines.py)
    if engine == "optimum":
        env.pop("PYTHONPATH", None)
    return env


def _call(python: str, args: list[str], stdin: str, env: dict, timeout: float) -> dict:
    proc = subprocess.run(
        [python, __file__, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-1500:] or f"exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run(
    cmd: list[str], log: Path, env: dict | None = None, timeout: float = 3600
) -> tuple[int, str]:
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    text = (
        f"$ {' '.join(cmd)}\n(exit {proc.returncode}, {time.time() - t0:.0f} s)\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n"
    )
    log.write_text(text)
    return proc.returncode, proc.stdout + proc.stderr


def _cached_run(cmd: list[str], log: Path, rebuild: bool, done) -> tuple[int, str, bool]:
    """Run cmd, or reuse its log when the same command ran before (and, if it succeeded, its
    output is there)."""
    if not rebuild and log.is_file():
        text = log.read_text()
        m = re.match(r"\$ (.*)\n\(exit (-?\d+),", text)
        if m and m.group(1) == " ".join(cmd) and (int(m.group(2)) != 0 or done()):
            return int(m.group(2)), text.split("--- stdout\n", 1)[-1], True
    rc, out = _run(cmd, log)
    return rc, out, False


def add_int8(pkg: Path, out: Path, dev: Path) -> dict:
    """A copy of the fp32 package with the int8 variant added by the converter's own quantize_int8
    (what `convert --int8` writes before its agreement gate), and that gate's agreement, measured
    again."""
    from dataclasses import replace

    from traductor.export.quantize import quantize_int8
    from traductor.runtime import Translator
    from traductor.runtime.onnx_model import OnnxSeq2Seq
    from traductor.runtime.package import INT8_ROWS, Variant, read_config, write_manifest
    from traductor.runtime.quality import forced_token_agreement, ort_greedy

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(pkg, out)
    quantize_int8(out / "encoder.onnx", out / "encoder.int8.onnx")
    quantize_int8(out / "decoder.onnx", out / "decoder.int8.onnx")
    cfg = read_config(out)
    cfg = replace(
        cfg,
        variants={
            **cfg.variants,
            "int8": Variant("encoder.int8.onnx", "decoder.int8.onnx", quantization=INT8_ROWS),
        },
    )
    (out / "config.json").write_text(cfg.to_json())
    write_manifest(out)
    tr = Translator(out, variant="fp32", intra_threads=1)
    texts = [x for x in dev.read_text(encoding="utf-8").splitlines() if x.strip()]
    src = [tr.tokenizer.encode(x).ids for x in texts]
    fp32 = OnnxSeq2Seq(out, variant="fp32", verify=False)
    int8 = OnnxSeq2Seq(out, variant="int8", verify=False)
    got = ort_greedy(fp32, src)
    got8 = ort_greedy(int8, src)
    info = {
        "package": str(out),
        "dev_sentences": len(src),
        "int8_next_token_agreement_with_fp32": forced_token_agreement(int8, src, got),
        "int8_greedy_identical_to_fp32": f"{sum(a == b for a, b in zip(got, got8))}/{len(src)}",
    }
    (out / "BUILT").write_text(json.dumps(info))
    write_manifest(out)
    return info


OPTIMUM_EXPORT = """
import sys, onnxruntime as ort
from optimum.onnxruntime import ORTModelForSeq2SeqLM
m = ORTModelForSeq2SeqLM.from_pretrained(sys.argv[1], export=True)
m.save_pretrained(sys.argv[2])
print(sorted(p.name for p in __import__('pathlib').Path(sys.argv[2]).glob('*.onnx')))
"""


def prepare(args, notes: dict) -> dict:
    """Build the model and every engine's files in --work; returns their paths (None where it
    failed) and records what each step did in `notes`."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "opus-size-es-en"
    paths = {
        "model_dir": str(model_dir),
        "package": None,
        "package_int8": None,
        "ct2_dir": {},
        "optimum_dir": None,
    }
    if args.rebuild or not (model_dir / "BUILT").is_file():
        shutil.rmtree(model_dir, ignore_errors=True)
        t0 = time.time()
        build_marian(model_dir)
        print(f"built {model_dir} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    engines = set(args.engines)
    if engines & {"traductor-fp32", "traductor-int8"}:
        _prepare_traductor(args, work, model_dir, paths, notes)
    _prepare_ct2(args, work, model_dir, paths, notes)
    if "optimum" in engines:
        _prepare_optimum(args, work, model_dir, paths, notes)
    return paths


def _prepare_traductor(args, work: Path, model_dir: Path, paths: dict, notes: dict) -> None:
    """`convert marian --int8`; if the int8 gate refuses (random weights), `--int8
    --accept-mismatch`; if that is refused too (--accept-mismatch does not cover the int8 gate), the
    gated fp32 package without --int8, plus a copy of it to which the int8 variant is added by the
    converter's own quantize_int8 (the same call, outside the gate), timed and labelled as such."""
    pkg = work / "traductor-pkg"
    dev = _write_dev_sources(work / "dev.es.txt", args.sentences)
    _convert_to_traductor(args, work, model_dir, pkg, dev, notes)
    if not (pkg / "config.json").is_file():
        return
    paths["package"] = paths["package_int8"] = str(pkg)
    cfg = json.loads((pkg / "config.json").read_text())
    notes["traductor_package_variants"] = {
        k: {f: v.get(f) for f in ("quantization", "greedy_agreement") if f in v}
        for k, v in cfg.get("variants", {}).items()
    }
    if "int8" in cfg.get("variants", {}) or "traductor-int8" not in args.engines:
        return
    ungated = work / "traductor-pkg-int8-ungated"
    if args.rebuild or not (ungated / "BUILT").is_file():
        try:
            notes["traductor_int8_ungated"] = _call(
                sys.executable,
                ["--add-int8", str(pkg), str(ungated), str(dev)],
                "",
                _env_for("pytorch"),
                3600,
            )
        except Exception as e:  # noqa: BLE001
            notes["traductor_int8_ungated"] = {"error": str(e)[-800:]}
    else:
        notes["traductor_int8_ungated"] = json.loads((ungated / "BUILT").read_text())
    paths["package_int8"] = str(ungated) if (ungated / "BUILT").is_file() else None


def _write_dev_sources(dev: Path, sentences: int) -> Path:
    """DEV_SENTENCES short test-book verses past the benchmark's sources, for the converter."""
    lines = [
        x
        for x in (HERE / "test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    short = [x for x in lines[max(sentences, 100) :] if len(x.split()) <= 15][:DEV_SENTENCES]
    dev.write_text("\n".join(short) + "\n", encoding="utf-8")
    return dev


def _convert_to_traductor(args, work: Path, model_dir: Path, pkg: Path, dev: Path, notes: dict):
    """Try the converter's attempts in order until one writes the package."""
    pre = [
        str(Path(sys.executable).parent / "traductor"),
        "convert",
        "marian",
        str(model_dir),
        "--out",
        str(pkg),
    ]
    post = ["--force", "--dev", str(dev), "--dev-sentences", str(DEV_SENTENCES)]
    attempts = [
        ("int8", pre + ["--int8"] + post, "convert-traductor.log"),
        (
            "int8 --accept-mismatch",
            pre + ["--int8"] + post + ["--accept-mismatch"],
            "convert-traductor-accept-mismatch.log",
        ),
        ("fp32 only", pre + post, "convert-traductor-fp32.log"),
        (
            "fp32 only --accept-mismatch",
            pre + post + ["--accept-mismatch"],
            "convert-traductor-fp32-accept-mismatch.log",
        ),
    ]
    notes["traductor_convert"] = []
    for label, cmd, log in attempts:
        rc, out, cached = _cached_run(
            cmd, work / log, args.rebuild, lambda: (pkg / "config.json").is_file()
        )
        notes["traductor_convert"].append(
            {
                "attempt": label,
                "command": " ".join(cmd),
                "exit": rc,
                "reused_log": cached,
                "output_tail": out.strip()[-2000:],
            }
        )
        print(
            f"traductor convert ({label}): exit {rc}{' (reused)' if cached else ''}",
            file=sys.stderr,
            flush=True,
        )
        if rc == 0:
            notes["traductor_package_from"] = label
            break


def _prepare_ct2(args, work: Path, model_dir: Path, paths: dict, notes: dict) -> None:
    """CTranslate2: its own converter, float32 and int8."""
    converter = str(Path(sys.executable).parent / "ct2-transformers-converter")
    for name, quant in (("ct2-fp32", None), ("ct2-int8", "int8")):
        if name not in args.engines:
            continue
        d = work / name
        if args.rebuild or not (d / "model.bin").is_file():
            cmd = [converter, "--model", str(model_dir), "--output_dir", str(d), "--force"] + (
                ["--quantization", quant] if quant else []
            )
            rc, out = _run(cmd, work / f"convert-{name}.log")
            notes[f"{name}_convert"] = {
                "command": " ".join(cmd),
                "exit": rc,
                "output_tail": out.strip()[-1500:],
            }
        else:
            notes[f"{name}_convert"] = {"reused": str(d)}
        if (d / "model.bin").is_file():
            paths["ct2_dir"][name] = str(d)


def _prepare_optimum(args, work: Path, model_dir: Path, paths: dict, notes: dict) -> None:
    """Optimum: its own venv (transformers 4.57), export once."""
    py = Path(args.work) / "venv-optimum" / "bin" / "python"
    d = work / "optimum-onnx"
    if not py.is_file():
        notes["optimum"] = (
            f"no venv at {py.parent.parent}: python3 -m venv, pip install torch==2.13.0, then "
            "'optimum-onnx[onnxruntime]' sentencepiece"
        )
        return
    if args.rebuild or not any(d.glob("*.onnx")):
        shutil.rmtree(d, ignore_errors=True)
        cmd = [str(py), "-c", OPTIMUM_EXPORT, str(model_dir), str(d)]
        rc, out = _run(cmd, work / "export-optimum.log", env=_env_for("optimum"))
        notes["optimum_export"] = {
            "command": f"{py} -c <ORTModelForSeq2SeqLM.from_pretrained(dir, export=True)"
            ".save_pretrained(out)>",
            "exit": rc,
            "output_tail": out.strip()[-1500:],
        }
    else:
        notes["optimum_export"] = {"reused": str(d)}
    if any(d.glob("*.onnx")):
        paths["optimum_dir"] = str(d)


def _cpu() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", text)
        info["model_name"] = m.group(1).strip() if m else "?"
        flags = set((re.search(r"Flags:\s*(.+)", text) or re.search("(.*)", "")).group(1).split())
        info["flags"] = {
            f: f in flags
            for f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
        }
        m = re.search(r"^CPU\(s\):\s*(\d+)", text, re.M)
        info["cpus"] = int(m.group(1)) if m else os.cpu_count()
    except OSError:
        pass
    return info


def _batches(src: list[list[int]], size: int) -> list[list[list[int]]]:
    order = sorted(src, key=len)  # length-sorted, the same batches for every engine
    return [order[i : i + size] for i in range(0, len(order), size)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out",
        default=str(HERE / "results" / "marian-engines"),
        help="directory for results.md and results.json",
    )
    p.add_argument(
        "--work", default="/tmp/marian-bench", help="models, converted engines and the Optimum venv"
    )
    p.add_argument(
        "--sentences", type=int, default=64, help="source sentences for greedy b16 and beam4 b32"
    )
    p.add_argument(
        "--b1-sentences",
        type=int,
        default=24,
        help="source sentences for greedy b1 (the first of the same list)",
    )
    p.add_argument("--repeats", type=int, default=4, help="interleaved repeats (median reported)")
    p.add_argument("--engines", default=",".join(ENGINES), help="engines to run, comma-separated")
    p.add_argument("--skip-optimum", action="store_true", help="leave the Optimum engine out")
    p.add_argument(
        "--rebuild", action="store_true", help="rebuild the model and reconvert every engine"
    )
    p.add_argument(
        "--timeout", type=float, default=1800, help="seconds allowed for one measurement"
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--add-int8", nargs=3, help=argparse.SUPPRESS)
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    if args.add_int8 or args.child or args.versions:
        print(json.dumps(_in_child(args)))
        return 0
    args.engines = [
        e for e in args.engines.split(",") if e and not (args.skip_optimum and e == "optimum")
    ]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engines: {sorted(unknown)}")
    started = time.time()
    notes: dict = {}
    paths = prepare(args, notes)
    optimum_python = Path(args.work) / "venv-optimum" / "bin" / "python"
    src, pad, pieces = _sources(paths, args.sentences, notes)
    versions = _versions(args.engines, optimum_python)
    errors = _setup_errors(args.engines, paths, notes)
    workloads = {
        name: (beam, size, src[: args.b1_sentences] if size == 1 else src)
        for name, (beam, size) in WORKLOADS.items()
    }
    common = {  # what every child is told besides its engine and workload
        "pad": pad,
        "model_dir": paths["model_dir"],
        "optimum_dir": paths["optimum_dir"],
        "package": paths["package"],
        "package_int8": paths["package_int8"],
        "ct2_dir": paths["ct2_dir"],
    }
    measured = _run_interleaved(args, workloads, common, pieces, errors, optimum_python)
    result = {
        "engines": list(args.engines),
        "workloads": {
            k: {"beam": b, "batch": s, "sentences": len(w)} for k, (b, s, w) in workloads.items()
        },
        "new_tokens": NEW_TOKENS,
        "repeats": args.repeats,
        "model": {
            "vocab_size": VOCAB_SIZE,
            **DIMS,
            "eos_bias": EOS_BIAS,
            "init_std": INIT_STD,
            "dir": paths["model_dir"],
        },
        "paths": paths,
        "cpu": _cpu(),
        "versions": versions,
        "errors": errors,
        "notes": notes,
        "rows": _rows(workloads, list(args.engines), *measured, errors),
        "wall_minutes": (time.time() - started) / 60,
        "command": "$ .venv/bin/python benchmarks/marian_engines.py " + " ".join(sys.argv[1:]),
    }
    _report(result, Path(args.out))
    return 0


def _in_child(args) -> dict:
    """The work this script does when it runs itself as a child (the hidden flags)."""
    if args.add_int8:
        return add_int8(*map(Path, args.add_int8))
    if args.child:
        return _child(json.loads(sys.stdin.read()))
    return _versions_child()


def _sources(paths: dict, sentences: int, notes: dict) -> tuple[list[list[int]], int, list[str]]:
    """The benchmark's source ids (MarianTokenizer, end token included), the pad id and every
    piece by id (CTranslate2 takes pieces). Also notes whether traductor's own tokenizer agrees."""
    from transformers import MarianTokenizer

    tok = MarianTokenizer.from_pretrained(paths["model_dir"])
    pieces = tok.convert_ids_to_tokens(list(range(VOCAB_SIZE)))
    lines = [
        x
        for x in (HERE / "test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if x.strip()
    ][:sentences]
    src = [tok(x).input_ids for x in lines]
    assert all(s[-1] == 0 for s in src)
    if paths["package"]:  # the package's own tokenizer must give the same ids (translate() uses it)
        from traductor.runtime import Translator

        tr = Translator(paths["package"], variant="fp32", intra_threads=1)
        notes["traductor_tokenizer_same_ids_as_MarianTokenizer"] = all(
            tr.tokenizer.encode(x).ids == s for x, s in zip(lines, src)
        )
        del tr
    return src, tok.pad_token_id, pieces


def _versions(engines: list[str], optimum_python: Path) -> dict:
    versions = {"main venv": _call(sys.executable, ["--versions"], "", _env_for("pytorch"), 120)}
    if "optimum" in engines and optimum_python.is_file():
        try:
            versions["optimum venv"] = _call(
                str(optimum_python), ["--versions"], "", _env_for("optimum"), 120
            )
        except Exception as e:  # noqa: BLE001
            versions["optimum venv"] = {"error": str(e)[-300:]}
    try:
        versions["traductor git"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return versions


def _setup_errors(engines: list[str], paths: dict, notes: dict) -> dict[str, str]:
    """{engine: why} for the engines that could not be set up (they are not timed)."""
    errors: dict[str, str] = {}
    if "optimum" in engines and not paths["optimum_dir"]:
        errors["optimum"] = (
            notes.get("optimum")
            or "export failed: "
            + str(notes.get("optimum_export", {}).get("output_tail", ""))[-400:]
        )
    for e in ("ct2-fp32", "ct2-int8"):
        if e in engines and e not in paths["ct2_dir"]:
            errors[e] = (
                "conversion failed: "
                + str(notes.get(f"{e}_convert", {}).get("output_tail", ""))[-400:]
            )
    for e in ("traductor-fp32", "traductor-int8"):
        if e in engines and not paths["package"]:
            errors[e] = "conversion failed (see notes)"
    if "traductor-int8" in engines and paths["package"] and not paths["package_int8"]:
        errors["traductor-int8"] = (
            "no int8 variant: the converter's int8 gate refused it; adding it failed: "
            f"{notes.get('traductor_int8_ungated')}"
        )
    return errors


def _run_interleaved(args, workloads: dict, common: dict, pieces, errors: dict, optimum_python):
    """Every repeat runs every workload on every engine (order rotated each repeat), each in a
    child. Returns seconds per run, tokens per sentence and the hypotheses, keyed (workload,
    engine); an engine failing at a workload is recorded in `errors` and not run there again."""
    times: dict[tuple, list[float]] = {}
    lengths: dict[tuple, list[int]] = {}
    hyps: dict[tuple, list[list[int]]] = {}
    engines = list(args.engines)
    total = args.repeats * len(workloads) * len(engines)
    done = 0
    for rep in range(args.repeats):
        order = engines[rep % len(engines) :] + engines[: rep % len(engines)]
        for wname, (beam, size, wsrc) in workloads.items():
            batches = _batches(wsrc, size)
            for engine in order:
                done += 1
                key = (wname, engine)
                if engine in errors or f"{engine} @ {wname}" in errors:
                    continue  # could not be set up, or failed at this workload
                spec = {
                    "engine": engine,
                    "beam": beam,
                    "batches": batches,
                    **common,
                    "pieces": pieces if engine.startswith("ct2") else None,
                }
                try:
                    r = _call(
                        _python_for(engine, optimum_python),
                        ["--child"],
                        json.dumps(spec),
                        _env_for(engine),
                        args.timeout,
                    )
                except Exception as e:  # noqa: BLE001 -- recorded in the table, the run goes on
                    errors[f"{engine} @ {wname}"] = f"repeat {rep + 1}: {str(e)[-600:]}"
                    print(
                        f"[{done}/{total}] {wname:<11} {engine:<15} FAILED: {str(e)[-300:]}",
                        file=sys.stderr,
                        flush=True,
                    )
                    continue
                times.setdefault(key, []).append(r["seconds"])
                lengths[key] = r["lengths"]
                hyps.setdefault(key, r["hyps"])
                tps = sum(r["lengths"]) / r["seconds"]
                print(
                    f"[{done}/{total}] {wname:<11} {engine:<15} {tps:8.1f} tokens/s "
                    f"({r['seconds']:.1f} s, {len(r['lengths'])} sentences, "
                    f"{min(r['lengths'])}-{max(r['lengths'])} tokens each)",
                    file=sys.stderr,
                    flush=True,
                )
    return times, lengths, hyps


def _rows(workloads: dict, engines: list[str], times, lengths, hyps, errors: dict) -> list[dict]:
    """One row per workload and engine: medians and token counts, or the error."""
    rows = []
    for wname, (beam, size, wsrc) in workloads.items():
        order = sorted(wsrc, key=len)
        for engine in engines:
            key = (wname, engine)
            row = {
                "workload": wname,
                "engine": engine,
                "beam": beam,
                "batch": size,
                "sentences": len(wsrc),
            }
            if key in times:
                toks = sum(lengths[key])
                med = statistics.median(times[key])
                ref = hyps.get((wname, "pytorch"))
                row.update(
                    {
                        "tokens_per_s": toks / med,
                        "median_seconds": med,
                        "seconds": times[key],
                        "repeats": len(times[key]),
                        "generated_tokens": toks,
                        "tokens_per_sentence": [min(lengths[key]), max(lengths[key])],
                        "all_exactly_32": all(n == NEW_TOKENS for n in lengths[key]),
                        "same_tokens_as_transformers": (
                            sum(a == b for a, b in zip(hyps[key], ref)) / len(ref)
                        )
                        if ref
                        else None,
                        "source_tokens": sum(len(s) for s in order),
                    }
                )
            else:
                row["error"] = errors.get(f"{engine} @ {wname}") or errors.get(
                    engine, "not measured"
                )
            rows.append(row)
    return rows


RATIOS = [
    ("traductor-int8", "ct2-int8"),
    ("traductor-int8", "optimum"),
    ("traductor-int8", "pytorch"),
    ("traductor-int8", "ct2-fp32"),
    ("traductor-fp32", "ct2-fp32"),
    ("traductor-fp32", "optimum"),
    ("traductor-fp32", "pytorch"),
    ("traductor-int8", "traductor-fp32"),
    ("ct2-int8", "ct2-fp32"),
    ("optimum", "pytorch"),
]
TARGETS = {
    ("greedy b1", "traductor-int8", "ct2-int8"): 1.2,
    ("greedy b1", "traductor-int8", "optimum"): 3.0,
}


def _report(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    workloads = list(res["workloads"])
    get = {(r["workload"], r["engine"]): r for r in res["rows"]}
    ratio_lines, res["ratios"] = _ratio_table(get, res["engines"], workloads)
    lines = [
        "# Marian (OPUS-MT size) on five engines, same weights",
        "",
        *_setup_lines(res),
        "",
        *_engine_table(get, res["engines"], workloads, res["notes"]),
        *ratio_lines,
    ]
    if res["errors"]:
        lines += ["", "Failures:", ""] + [
            f"- {e}: {msg.strip().splitlines()[-1] if msg.strip() else msg}"
            for e, msg in res["errors"].items()
        ]
    lines += _traductor_notes(res["notes"])
    lines += ["", "Versions:", ""]
    for where, v in res["versions"].items():
        lines.append(
            f"- {where}: "
            + (", ".join(f"{k} {x}" for k, x in v.items()) if isinstance(v, dict) else str(v))
        )
    lines += [
        "",
        f"Total wall time {res['wall_minutes']:.0f} min. Command:",
        "",
        "```",
        res["command"],
        "```",
        "",
    ]
    text = "\n".join(lines)
    (out / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    (out / "results.md").write_text(text)
    print(text)


def _setup_lines(res: dict) -> list[str]:
    """The model, the sources, how tokens/s is counted, and the CPU."""
    cpu, m = res["cpu"], res["model"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu.get("flags", {}).items())
    wl = "; ".join(f"{k}: {v['sentences']} sentences" for k, v in res["workloads"].items())
    return [
        f"Random-weight MarianMT, d_model {m['d_model']}, {m['layers']}+{m['layers']} layers, "
        f"{m['heads']} heads, ffn {m['ffn']}, {m['activation']}, shared vocabulary "
        f"{m['vocab_size']:,}; end-token logit bias {m['eos_bias']:g} so every engine generates "
        f"exactly {res['new_tokens']} tokens per sentence. Spanish sources from "
        f"benchmarks/test-books.es.txt ({wl}). One thread everywhere; tokens/s = generated tokens "
        f"/ wall time, median of {res['repeats']} interleaved repeats (engine order rotated each "
        "repeat; load and one warm-up batch excluded).",
        "",
        f"CPU: {cpu.get('model_name', '?')} ({cpu.get('cpus', '?')} CPUs, shared machine), "
        f"{flags}.",
    ]


def _engine_table(get: dict, engines: list[str], workloads: list[str], notes: dict) -> list[str]:
    """tokens/s per engine and workload, tokens per sentence, agreement with transformers."""
    lines = [
        "| engine | "
        + " | ".join(f"{w} tok/s" for w in workloads)
        + " | tokens per sentence | same tokens as transformers |",
        "|---|" + "---:|" * len(workloads) + "---|---|",
    ]
    for e in engines:
        cells, counts, same = [], [], []
        for w in workloads:
            r = get[(w, e)]
            if "tokens_per_s" in r:
                cells.append(f"{r['tokens_per_s']:,.1f}")
                lo, hi = r["tokens_per_sentence"]
                counts.append(f"{lo}" if lo == hi else f"{lo}-{hi}")
                s = r.get("same_tokens_as_transformers")
                same.append("-" if s is None else f"{100 * s:.0f}%")
            else:
                cells.append("failed")
                counts.append("-")
                same.append("-")
        ok = all(get[(w, e)].get("all_exactly_32") for w in workloads)
        label = e
        if e == "traductor-int8" and notes.get("traductor_int8_ungated"):
            label = "traductor-int8 (ungated: int8 gate refused, see below)"
        elif e.startswith("traductor") and "accept-mismatch" in str(
            notes.get("traductor_package_from")
        ):
            label = f"{e} (package written with --accept-mismatch)"
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {' / '.join(counts)}{' (all exactly 32)' if ok else ''} | {' / '.join(same)} |"
        )
    return lines


def _ratio_table(get: dict, engines: list[str], workloads: list[str]) -> tuple[list[str], dict]:
    """RATIOS at every workload, with TARGETS marked met or missed; also {name: ratio}."""
    lines = [
        "",
        "Ratios (tokens/s of the first engine / the second; targets at greedy b1: traductor int8 "
        ">= 1.2x CT2 int8, >= 3x Optimum):",
        "",
        "| ratio | " + " | ".join(workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]

    def tps(w, e):
        r = get.get((w, e))
        return r.get("tokens_per_s") if r else None

    ratios = {}
    for a, b in RATIOS:
        if a not in engines or b not in engines:
            continue
        cells = []
        for w in workloads:
            x, y = tps(w, a), tps(w, b)
            if x and y:
                ratios[f"{w}: {a} / {b}"] = x / y
                target = TARGETS.get((w, a, b))
                mark = (
                    f" (target {target:g}x: {'met' if x / y >= target else 'missed'})"
                    if target
                    else ""
                )
                cells.append(f"{x / y:.2f}x{mark}")
            else:
                cells.append("-")
        lines.append(f"| {a} / {b} | " + " | ".join(cells) + " |")
    return lines, ratios


def _traductor_notes(notes: dict) -> list[str]:
    """What traductor's converter did, the ungated int8 copy, the tokenizer check, the variants."""
    lines = []
    attempts = notes.get("traductor_convert") or []
    if attempts:
        lines += [
            "",
            "traductor's converter, in order (`traductor convert marian MODEL --out PKG --force "
            f"--dev DEV --dev-sentences {DEV_SENTENCES}` plus the flags named):",
            "",
        ]
        for a in attempts:
            last = [x for x in a["output_tail"].splitlines() if x.strip()]
            lines.append(
                f"- {a['attempt']}: exit {a['exit']}" + (f": `{last[-1][:400]}`" if last else "")
            )
        used = notes.get("traductor_package_from")
        lines.append(
            f"- package timed as traductor-fp32: written by the '{used}' attempt "
            f"({notes.get('traductor_package_variants')})"
            if used
            else "- no package was written"
        )
    ungated = notes.get("traductor_int8_ungated")
    if ungated:
        lines += [
            "",
            "traductor-int8 is NOT a gated package: the converter refused its int8 variant, so the "
            "int8 graphs were added to a copy of the fp32 package by the converter's own "
            "`quantize_int8` (the very call `--int8` makes before its gate), measured again on the "
            f"dev sentences: {json.dumps(ungated)}. Its speed is what `--int8` would ship; its "
            "agreement with fp32 is below the converter's 98% bar on these random weights.",
        ]
    if "traductor_tokenizer_same_ids_as_MarianTokenizer" in notes:
        same = "yes" if notes["traductor_tokenizer_same_ids_as_MarianTokenizer"] else "NO"
        lines += [
            "",
            "traductor's own source tokenizer gives MarianTokenizer's ids on every benchmark "
            f"source: {same} (all engines are fed those ids).",
        ]
    if notes.get("traductor_package_variants"):
        lines += [
            "",
            f"traductor package variants: {json.dumps(notes['traductor_package_variants'])}",
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
