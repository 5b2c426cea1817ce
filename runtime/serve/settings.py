"""The server's settings: one frozen dataclass, the single source of `traductor serve`'s defaults
(the CLI reads its flag defaults from here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..package import InputError

STATIC_SENTENCES = 32  # default --max-batch-sentences
CONTINUOUS_SENTENCES = 16  # default running sentences per worker with --continuous
# Two batches decoded at once keep two cores busy: one worker gathers while the other decodes.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    char_limit: int = -1  # characters per text; -1 = none
    batch_limit: int = -1  # texts per request; -1 = none
    req_limit: int = -1  # requests per client per minute; -1 = none
    alternatives_limit: int = 8  # alternatives a request may ask for; -1 = none
    api_keys: frozenset[str] = frozenset()  # non-empty: /translate and /detect need one of them
    batching: bool = True  # False: each request is translated alone
    batch_wait_ms: float = 5.0  # how long an open batch waits for more requests
    # Sentences decoded together: None = STATIC_SENTENCES, or CONTINUOUS_SENTENCES running per
    # worker when continuous.
    max_batch_sentences: int | None = None
    workers: int = DEFAULT_WORKERS  # batches decoded at once, per package
    # Beam search: requests join the running batch between steps (opt-in, see ContinuousBatches).
    continuous: bool = False
    frontend_timeout: int = 500  # reported by /frontend/settings
    trust_forwarded_for: bool = False  # take the client address from X-Forwarded-For (a proxy's)
    # The in-browser page (web/ of a source checkout, or --web), served at /; None: the page
    # shipped in the package (page/) is served there instead.
    web_dir: Path | None = None
    file_limit_mb: float = 20.0  # largest upload /translate_file takes, in MiB; -1 = none
    # Seconds a translated file waits for its download, then is removed (LibreTranslate: 30 min).
    files_ttl: float = 1800.0
    files_dir: Path | None = None  # where translated files wait; None = a temporary folder
    beam_size: int | None = None  # None: each package's default
    # Loading the packages (not used by create_app, which takes loaded translators).
    variant: str | None = None  # None: int8 where present
    # One intra-op thread per package: request batches leave no idle core, and under load ORT's
    # spinning worker threads lost to the HTTP side (32 clients: 48 req/s on 1 thread, 22 on
    # "auto").
    threads: int = 1
    # Score only each sentence's shortlisted tokens where a package has a vocabulary shortlist.
    shortlist: bool = True
    log_level: str = "warning"  # uvicorn's

    def check(self) -> None:
        """Raise InputError, naming the flag, for a value `traductor serve` refuses."""
        for name in ("char_limit", "batch_limit", "req_limit"):
            v = getattr(self, name)
            if v < -1 or v == 0:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} must be -1 (no limit) or a positive number, got {v}")
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if (
            self.max_batch_sentences is not None and self.max_batch_sentences < 1
        ) or self.batch_wait_ms < 0:
            raise InputError("--max-batch-sentences must be >= 1 and --batch-wait-ms >= 0")
        if self.file_limit_mb != -1 and self.file_limit_mb <= 0:
            raise InputError(
                f"--file-limit-mb must be -1 (no limit) or positive, got {self.file_limit_mb}"
            )
        if self.files_ttl <= 0:
            raise InputError(f"--files-ttl must be positive, got {self.files_ttl}")
        if self.beam_size is not None and not 1 <= self.beam_size <= 64:
            raise InputError(f"--beam must be between 1 and 64, got {self.beam_size}")


def find_web_dir(given: str | None) -> Path | None:
    """--web DIR, else the web/ folder of a source checkout when its dependencies are installed."""
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            raise InputError(f"--web: {path} has no index.html")
        return path
    checkout = Path(__file__).resolve().parents[2] / "web"
    if (checkout / "index.html").is_file() and (checkout / "node_modules").is_dir():
        return checkout
    return None
