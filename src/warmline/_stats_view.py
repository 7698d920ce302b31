"""``warmline.stats_table(client_or_pool)``: the per-origin stats as a rich table.

For users' own programs and dashboards (``rich.live.Live(stats_table(c))``);
rich stays optional: without it, one clear ImportError names the extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warmline._policy import PoolStats

__all__ = ["stats_table"]

_COLUMNS = (
    ("origin", "left"),
    ("size", "right"),
    ("ready", "right"),
    ("in use", "right"),
    ("healing", "right"),
    ("requests", "right"),
    ("errors", "left"),
    ("reconnects", "right"),
    ("stale retries", "right"),
    ("waits", "right"),
    ("keep-warm", "right"),
)


def stats_table(source: Any, *, title: str | None = "warmline") -> Any:
    """A ``rich.table.Table`` of ``source.stats()``: one row per origin.

    Args:
        source: A ``ClientPool``/``AtomicClientPool`` (one row) or an
            ``AsyncClient``/``Client`` (a row per origin), or anything whose
            ``stats()`` returns a ``PoolStats`` or a mapping of them.
        title: The table's title (None for none).

    Raises:
        ImportError: rich is not installed (``pip install 'warmline[bench]'``
            or ``pip install rich``).
    """
    try:
        from rich.table import Table
    except ImportError:
        raise ImportError(
            "warmline.stats_table needs rich: pip install rich (or 'warmline[bench]')"
        ) from None
    stats = source.stats()
    rows: Mapping[str, PoolStats] = (
        {str(getattr(source, "origin", "pool")): stats} if isinstance(stats, PoolStats) else stats
    )
    table = Table(title=title)
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for origin, s in rows.items():
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "-"
        table.add_row(
            origin,
            str(s.size),
            str(s.ready),
            str(s.in_use),
            str(s.reconnecting),
            f"{s.requests:,}",
            errors,
            str(s.reconnects),
            str(s.stale_retries),
            str(s.acquire_waits),
            str(s.keep_warm_pings),
        )
    return table
