"""Rows per second and time left on stderr (tqdm, from the dataset extra), or nothing."""

from __future__ import annotations

import sys


class _Off:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool):
    if not enabled:
        return _Off()
    from tqdm import tqdm

    return tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
