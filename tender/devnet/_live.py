"""The devnet's live view: intents, bids, winners, prices and states as they happen."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tender.devnet._summary import RequestRecord

__all__ = ["CALLBACK_MARK", "STATE_STYLE", "render"]

STATE_STYLE = {
    "pending": "dim",
    "sent": "cyan",
    "open": "cyan",
    "awarded": "blue",
    "delivered": "magenta",
    "challenged": "bold yellow",
    "settled": "green",
    "refunded": "yellow",
    "expired": "bold yellow",
    "failed": "bold red",
}


#: How the ``cb`` column shows an agent request's callback (``RequestRecord.callback``).
CALLBACK_MARK = {
    "pending": ("…", "dim"),
    "ok": ("callback ✓", "bold green"),
    "failed": ("callback ✗", "bold red"),
    "none": ("-", "dim"),
}


def _tokens(amount: int | None, decimals: int = 18) -> str:
    if amount is None:
        return "-"
    return f"{amount / 10**decimals:.4f}"


def render(
    records: Sequence[RequestRecord],
    *,
    started: float,
    providers: Mapping[str, str] | None = None,
    rows: int = 18,
    title: str = "Tender devnet",
) -> RenderableType:
    """One frame: counters, then the most recent requests (newest last)."""
    names = dict(providers or {})
    states = Counter(r.state for r in records)
    done = sum(1 for r in records if r.terminal)
    called_back = sum(1 for r in records if r.callback == "ok")
    header = Text.assemble(
        (f"{title}  ", "bold"),
        (f"{done}/{len(records)} done  ", "bold"),
        *[(f"{state} {count}  ", STATE_STYLE.get(state, "")) for state, count in sorted(states.items())],
        (f"challenged {sum(r.challenged for r in records)}  ", "yellow"),
        (f"slashed {sum(r.slashed for r in records)}  ", "red"),
        (f"agent callbacks {called_back}/{sum(r.source == 'agent' for r in records)}  ", "green"),
        (f"{time.monotonic() - started:5.1f}s", "dim"),
    )
    table = Table(expand=True, show_edge=False, pad_edge=False)
    for column, justify in (("#", "right"), ("via", "left"), ("model", "left"), ("auction", "left"),
                            ("proof", "left"), ("job", "left"), ("bids", "right"), ("winner", "left"),
                            ("price / max", "right"), ("state", "left"), ("cb", "left"), ("e2e", "right")):  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    active = [r for r in records if r.state != "pending"]
    for record in active[-rows:]:
        winner = names.get(record.provider or "", (record.provider or "-")[:10])
        state = record.state + (" ⚔" if record.challenged else "") + (" ✂" if record.slashed else "")
        table.add_row(
            str(record.index),
            record.source,
            record.model,
            record.auction,
            record.proof_mode,
            (record.job_id or "-")[:10],
            str(record.bids) if record.auction == "reverse" else "-",
            winner,
            f"{_tokens(record.price_paid)} / {_tokens(record.max_price)}",
            Text(state, style=STATE_STYLE.get(record.state, "")),
            Text(*CALLBACK_MARK.get(record.callback or "", ("", ""))),
            "-" if record.e2e_ms is None else f"{record.e2e_ms / 1000:.1f}s",
        )
    return Panel(Group(header, table), border_style="blue")
