"""`traductor translate` and `traductor models`: torch-free command-line front ends."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from .models import add_model, list_models, remove_model, user_root
from .onnx_model import choose_variant
from .package import InputError, ModelError, installed_variants, read_config
from .translator import Translator


def cli_translator(args) -> Translator:
    """The Translator the model and execution flags ask for (translate, translate-file)."""
    fallback = ("cpu",) if args.fallback_cpu else ()
    return Translator(
        args.model,
        providers=args.provider.split(","),
        variant=args.variant,
        intra_threads=args.threads,
        fallback=fallback,
        shortlist=not getattr(args, "no_shortlist", False),
    )


def _read_lines(stream, name: str):
    """Yield decoded lines; invalid UTF-8 is a user error naming the line, never a traceback."""
    for n, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise ModelError(
                f"{name} line {n} is not valid UTF-8 (byte {e.start}: "
                f"{raw[e.start : e.start + 1]!r}); convert the input to UTF-8"
            ) from e


class _Progress:
    """A one-line progress bar on stderr (the runtime does not depend on tqdm)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.time()

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled:
            frac = self.done / max(self.total, 1)
            rate = self.done / max(time.time() - self.start, 1e-9)
            bar = "#" * int(30 * frac)
            print(
                f"\r[{bar:<30}] {self.done}/{self.total} lines  {rate:.1f} lines/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def translate_main(args) -> int:
    warnings.simplefilter("always", RuntimeWarning)
    warnings.showwarning = lambda msg, cat, *a, **k: print(
        f"traductor: warning: {msg}", file=sys.stderr
    )
    translator = cli_translator(args)
    opts = {
        "beam_size": args.beam,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "target_language": getattr(args, "target_language", None),
    }
    if args.input and args.text:
        raise InputError("give TEXT arguments or --input FILE, not both")
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.text:
            _emit(translator, args.text, opts, out, args.json)
        elif args.input:
            path = Path(args.input)
            if not path.is_file():
                raise ModelError(f"input file not found: {path}")
            with open(path, "rb") as f:
                lines = list(_read_lines(f, str(path)))
            bar = _Progress(len(lines), enabled=sys.stderr.isatty() or args.progress)
            chunk = max(args.batch_size, 1) * 4
            for start in range(0, len(lines), chunk):
                _emit(translator, lines[start : start + chunk], opts, out, args.json)
                bar.update(len(lines[start : start + chunk]))
            bar.close()
        else:
            # Line by line, flushed, so it works as a filter in a pipe.
            for line in _read_lines(sys.stdin.buffer, "stdin"):
                _emit(translator, [line], opts, out, args.json)
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _emit(translator: Translator, texts: list[str], opts: dict, out, as_json: bool) -> None:
    t0 = time.perf_counter()
    results = translator.translate_batch(texts, **opts)
    ms = 1000 * (time.perf_counter() - t0) / max(len(texts), 1)
    for src, r in zip(texts, results):
        if as_json:
            out.write(
                json.dumps(
                    {"source": src, **r.to_dict(), "ms_per_sentence": round(ms, 2)},
                    ensure_ascii=False,
                )
                + "\n"
            )
        else:
            # One output line per input line, even when a translation itself holds a newline.
            out.write(r.text.replace("\n", " ") + "\n")


def models_main(args) -> int:
    if args.action == "add":
        entry = add_model(args.src, args.name, args.force)
        print(f"added {entry.name} -> {entry.path}")
        _describe(entry.path, entry.name, entry.origin)
        return 0
    if args.action == "remove":
        print(f"removed {args.name} ({remove_model(args.name)})")
        return 0
    if args.path:
        dirs = []
        for root in map(Path, args.path):
            if not root.is_dir():
                raise ModelError(f"not a directory: {root}")
            dirs += [
                (p.parent, p.parent.name, "path")
                for p in sorted(set(root.glob("*/config.json")) | set(root.glob("config.json")))
            ]
    else:
        dirs = [(e.path, e.name, e.origin) for e in list_models()]
        print(f"user models: {user_root()}")
    for model_dir, name, origin in dirs:
        _describe(model_dir, name, origin)
    if not dirs:
        print(
            "no models found"
            + ("" if args.path else "; `traductor models add DIR` installs a package")
        )
    return 0


def _describe(model_dir: Path, name: str, origin: str) -> None:
    try:
        cfg = read_config(model_dir)
    except ModelError as e:
        print(f"{name}  [{origin}] {model_dir}: unusable ({e})")
        return
    d = cfg.dims
    present = installed_variants(model_dir, cfg)
    targets = ",".join(sorted(cfg.language_tags)) if cfg.language_tags else cfg.target_language
    print(f"{name}  {cfg.source_language}->{targets}  [{origin}] {model_dir}")
    if cfg.converted_from:
        print(f"  converted from {cfg.converted_from}")
    print(
        f"  d_model {d.d_model}, {d.n_encoder_layers}+{d.n_decoder_layers} layers, vocab "
        f"{d.vocab_size}"
    )
    default = choose_variant(cfg, ["CPUExecutionProvider"], present) if present else None
    for vname, v in cfg.variants.items():
        if vname not in present:
            print(f"  {vname:<5}{'':<10} not installed here ({v.encoder}, {v.decoder} absent)")
            continue
        size = sum(
            (model_dir / f).stat().st_size
            for f in (v.encoder, v.decoder)
            if (model_dir / f).is_file()
        )
        bleu = v.bleu
        mark = " (default)" if vname == default else ""
        print(
            f"  {vname:<5}{mark:<10} {size / 1e6:6.1f} MB  test BLEU "
            f"{'-' if bleu is None else f'{bleu:.2f} (beam {cfg.decoding.beam_size})'}"
        )
