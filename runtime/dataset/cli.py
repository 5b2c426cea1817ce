"""`traductor translate-dataset INPUT --output DIR`: check everything, plan the parts, skip the ones
already written, run an engine on the rest, and print the totals."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import pyarrow  # noqa: F401 - the dataset extra: missing, `traductor` names it in one line
import tqdm  # noqa: F401

from ..cli import cli_translator
from .core import ModelSpec
from .local import run_local
from .options import DatasetError, DatasetOptions
from .parts import (
    done_parts,
    job_manifest,
    model_fingerprint,
    plan_parts,
    prepare_output,
    tally,
)
from .sources import scan_inputs


def translate_dataset_main(args) -> int:
    warnings.simplefilter(
        "ignore", RuntimeWarning
    )  # long rows are split; a warning per row is noise
    opts = DatasetOptions(
        column=args.column,
        output_format=args.output_format,
        part_rows=args.part_rows,
        max_chars=args.max_chars,
        beam_size=args.beam,
        max_length=args.max_length,
        batch_size=args.batch_size,
        target_language=args.target_language,
    ).validate()
    if args.engine == "ray":
        _check_ray()
    out = Path(args.output).expanduser().resolve()
    files = scan_inputs(args.input, opts.column, opts.part_rows, exclude=out)
    parts = plan_parts(files, opts.part_rows, opts.output_format)
    translator = cli_translator(args)
    translator.translate_batch([], **opts.decoding())  # a bad option fails here, before any work
    model = {
        "fingerprint": model_fingerprint(translator.model_dir),
        "variant": translator.variant,
        "provider": translator.providers[0],
    }
    manifest = job_manifest(files, opts, model, len(parts), args.input)
    lock = prepare_output(out, manifest, args.overwrite)
    try:
        done = done_parts(out, parts)
        todo = [p for p in parts if p.name not in done]
        total = sum(p.rows for p in parts)
        _say(
            f"{total} rows in {len(files)} file(s): {len(parts)} parts, {len(done)} already "
            f"written, {len(todo)} to translate ({args.engine} engine)"
        )
        progress = args.progress if args.progress is not None else sys.stderr.isatty()
        t0 = time.perf_counter()
        start_s = 0.0  # starting or joining Ray: reported, not counted in rows/s
        if todo and args.engine == "ray":
            start_s = _run_ray(args, translator, todo, opts, out, progress)
        elif todo:
            workers = args.workers or os.cpu_count() or 1
            if workers < 1:
                raise DatasetError(f"invalid --workers {workers}: must be >= 1")
            run_local(
                translator,
                todo,
                opts,
                out,
                progress,
                workers,
                _model_spec(args, translator),
                args.threads,
            )
        seconds = time.perf_counter() - t0 - start_s
        rows, kinds = tally(out, parts)
    finally:
        os.close(lock)
    done_now = sum(p.rows for p in todo)
    errors = sum(kinds.values())
    by_kind = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
    print(
        f"{rows} rows -> {out} ({errors} errors{': ' + by_kind if by_kind else ''}); this run: "
        f"{done_now} rows in {seconds:.1f} s, {done_now / max(seconds, 1e-9):.1f} rows/s"
    )
    return 0


def _say(msg: str) -> None:
    print(f"traductor: {msg}", file=sys.stderr, flush=True)


def _check_ray() -> None:
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError as e:
        raise DatasetError(
            "--engine ray needs ray, which is not installed: pip install 'traductor[ray]'"
        ) from e


def _model_spec(args, translator) -> ModelSpec:
    return ModelSpec(
        str(Path(translator.model_dir).resolve()),
        translator.variant,
        tuple(args.provider.split(",")),
        ("cpu",) if args.fallback_cpu else (),
    )


def _run_ray(args, translator, todo, opts, out, progress) -> float:
    from .ray_engine import RayOptions, run_ray

    model = _model_spec(args, translator)
    ro = RayOptions(
        address=args.address,
        cpus_per_actor=args.cpus_per_actor,
        min_actors=args.min_actors,
        max_actors=args.actors,
        local_cpus=args.ray_cpus,
        ship_model=args.ship_model,
    )
    for name in ("cpus_per_actor", "min_actors", "max_actors", "local_cpus"):
        v = getattr(ro, name)
        if v is not None and v < 1:
            raise DatasetError(f"invalid {name}={v}: must be >= 1")
    used = run_ray(todo, opts, model, out, ro, progress)
    _say(
        f"ray: {len(used['actors'])} actor(s) on {len(used['nodes'])} node(s) did the work; "
        f"Ray started in {used['start_s']:.1f} s (not counted in rows/s)"
    )
    return used["start_s"]
