"""Who may translate: API keys (read from a file) and requests per client per minute."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

from ..package import InputError
from .errors import ApiError
from .settings import Settings


class RateLimiter:
    """Requests per client per minute, over a sliding window."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute < 0:
            return
        now = time.monotonic()
        with self.lock:
            q = self.seen[client]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                raise ApiError(429, f"Slowdown: {self.per_minute} per 1 minute")
            q.append(now)


class Access:
    """The gate of /translate and /detect: the request's API key, then its client's rate."""

    def __init__(self, settings: Settings):
        self.keys = settings.api_keys
        self.trust_forwarded_for = settings.trust_forwarded_for
        self.limiter = RateLimiter(settings.req_limit)

    def check(self, request, params: dict) -> None:
        if self.keys:
            key = params.get("api_key")
            if not key:
                raise ApiError(400, "Please contact the server operator to get an API key")
            if key not in self.keys:
                raise ApiError(403, "Invalid API key")
        self.limiter.check(self.client_of(request))

    def client_of(self, request) -> str:
        """The client's address: X-Forwarded-For's first one when trusted (behind a proxy)."""
        forwarded = request.headers.get("x-forwarded-for") if self.trust_forwarded_for else None
        if forwarded:
            return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "127.0.0.1"


def load_api_keys(path: str | None) -> frozenset[str]:
    """--api-keys FILE: one key per line, # starts a comment; no file given: no keys."""
    if not path:
        return frozenset()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--api-keys: file not found: {p}")
    keys = frozenset(
        line.strip()
        for line in p.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not keys:
        raise InputError(f"--api-keys: {p} holds no key (one per line; # starts a comment)")
    return keys
