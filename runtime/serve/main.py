"""`traductor serve`: flags -> Settings, the packages loaded, the app run on uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

from ..continuous import supports_rows_at_different_steps
from ..package import InputError
from ..translator import Translator
from .access import load_api_keys
from .languages import Languages
from .settings import Settings, find_web_dir


def serve_main(args) -> int:
    uvicorn = _require_serve_extra()
    settings = settings_from_args(args)
    settings.check()
    translators = [
        Translator(
            m,
            variant=settings.variant,
            intra_threads=settings.threads,
            shortlist=settings.shortlist,
        )
        for m in (args.model or [None])
    ]
    from .app import create_app

    app = create_app(translators, settings)
    langs = app.state.languages
    if settings.batching and settings.continuous:
        _warn_continuous_unsupported(translators)
    missing = app.state.service.file_translation.missing
    if missing:
        print(
            f"traductor serve: file translation is off ({missing} is missing): "
            "pip install 'traductor[documents]'",
            file=sys.stderr,
            flush=True,
        )
    pairs = ", ".join(f"{s}->{t}" for s, t in langs.directions)
    print(
        f"traductor serve: {pairs} on http://{settings.host}:{settings.port} "
        f"(batching {_batching_mode(settings, langs)})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=None,
    )
    return 0


def _require_serve_extra():
    """uvicorn, once starlette is known to be there too; else one line naming the extra."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise InputError(
            f"`traductor serve` needs the serve extra: pip install 'traductor[serve]' "
            f"({e.name} is missing)"
        ) from None
    return uvicorn


def settings_from_args(args) -> Settings:
    """The parsed `traductor serve` flags as Settings (the API keys read, the page found)."""
    return Settings(
        host=args.host,
        port=args.port,
        char_limit=args.char_limit,
        batch_limit=args.batch_limit,
        req_limit=args.req_limit,
        alternatives_limit=args.alternatives_limit,
        api_keys=load_api_keys(args.api_keys),
        batching=not args.no_batching,
        trust_forwarded_for=args.trust_forwarded_for,
        web_dir=find_web_dir(args.web),
        file_limit_mb=args.file_limit_mb,
        files_ttl=args.files_ttl,
        files_dir=Path(args.files_dir) if args.files_dir else None,
        beam_size=args.beam,
        batch_wait_ms=args.batch_wait_ms,
        max_batch_sentences=args.max_batch_sentences,
        workers=args.workers,
        continuous=args.continuous,
        variant=args.variant,
        threads=args.threads,
        shortlist=not getattr(args, "no_shortlist", False),
        log_level=args.log_level,
    )


def _warn_continuous_unsupported(translators: list[Translator]) -> None:
    for tr in translators:
        if not supports_rows_at_different_steps(tr.model):
            print(
                f"traductor serve: --continuous: {tr.model_dir} was exported before decoder graphs "
                "took one position per row; its requests are batched statically (re-export it "
                "for continuous batching)",
                file=sys.stderr,
                flush=True,
            )


def _batching_mode(settings: Settings, langs: Languages) -> str:
    if not settings.batching:
        return "off"
    modes = {d.batcher.continuous for d in langs.directions.values()}
    if modes == {True}:
        return "continuous"
    return "static" if modes == {False} else "on"
