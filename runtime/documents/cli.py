"""`traductor translate-file INPUT`: translate a document and keep its format."""

from __future__ import annotations

import sys
import time
import warnings

from ..cli import cli_translator
from .api import translate_file
from .formats import format_of
from .glossary import load_glossary, load_keep


def translate_file_main(args) -> int:
    warnings.simplefilter("always", RuntimeWarning)
    warnings.showwarning = lambda msg, cat, *a, **k: print(
        f"traductor: warning: {msg}", file=sys.stderr
    )
    format_of(args.input, args.format)  # an unsupported file fails before the model loads
    glossary = load_glossary(args.glossary) if args.glossary else None
    keep = load_keep(args.keep or ())
    translator = cli_translator(args)
    bar = _progress_bar(enabled=args.progress and sys.stderr.isatty())
    try:
        out = translate_file(
            translator,
            args.input,
            args.output,
            fmt=args.format,
            force=args.force,
            glossary=glossary,
            keep=keep,
            progress=bar.update if bar else None,
            beam_size=args.beam,
            batch_size=args.batch_size,
            max_length=args.max_length,
            target_language=args.target_language,
        )
    finally:
        if bar:
            bar.close()
    print(out)
    return 0


def _progress_bar(enabled: bool):
    """tqdm over sentences where it is installed, else a one-line bar on stderr."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _LineBar()
    return _Tqdm(tqdm)


class _Tqdm:
    def __init__(self, tqdm):
        self.bar = tqdm(total=0, unit="sentence", file=sys.stderr, dynamic_ncols=True)

    def update(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class _LineBar:
    def __init__(self):
        self.start, self.shown = time.time(), False

    def update(self, done: int, total: int) -> None:
        rate = done / max(time.time() - self.start, 1e-9)
        bar = "#" * int(30 * done / max(total, 1))
        print(
            f"\r[{bar:<30}] {done}/{total} sentences  {rate:.1f}/s",
            end="",
            file=sys.stderr,
            flush=True,
        )
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)
