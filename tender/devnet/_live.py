"""The devnet's live view: intents, bids, winners, prices and states as they happen."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tender.chain import JobState
from tender.devnet._summary import RequestRecord, request_state, timings

__all__ = ["CALLBACK_MARK", "STATE_STYLE", "render"]

_CHAIN_STYLE = {
    JobState.NONE: "cyan",
    JobState.OPEN: "cyan",
    JobState.AWARDED: "blue",
    JobState.DELIVERED: "magenta",
    JobState.CHALLENGED: "bold yellow",
    JobState.PROOF_REQUIRED: "bold yellow",
    JobState.SETTLED: "green",
    JobState.REFUNDED: "yellow",
    JobState.EXPIRED: "bold yellow",
}

#: How the view colours each request state (``RequestRecord.state``).
STATE_STYLE = {
    "pending": "dim",
    **{request_state(state): style for state, style in _CHAIN_STYLE.items()},
    "failed": "bold red",
}


#: How the ``cb`` column shows an agent request's callback (``RequestRecord.callback``).
CALLBACK_MARK = {
    "pending": ("…", "dim"),
    "ok": ("callback ✓", "bold green"),
    "failed": ("callback ✗", "bold red"),
    "none": ("-", "dim"),
}


def _ms(p: Mapping[str, float | None]) -> str:
    """``p50/p95`` of a ``{p50, p95, n}`` figure, in ms (``-`` before any value)."""
    if p.get("p50") is None:
        return "-"
    return f"{p['p50']:.0f}/{p['p95']:.0f}ms"


def _tokens(amount: int | None, decimals: int = 18, *, places: int = 4) -> str:
    if amount is None:
        return "-"
    return f"{amount / 10**decimals:.{places}f}"


#: Below this many columns the view drops the job id and abbreviates (it fits 80 columns).
WIDE = 120

#: Short names of the request's route in the narrow view.
_VIA = {"signed": "sig", "onchain": "chain", "agent": "agent"}


def render(
    records: Sequence[RequestRecord],
    *,
    started: float,
    providers: Mapping[str, str] | None = None,
    rows: int = 18,
    title: str = "Tender devnet",
) -> RenderableType:
    """One frame: counters, then the most recent requests (newest last). It lays itself out for
    the terminal's width when printed: every column whole from 80 columns up, the job ids and
    long names from :data:`WIDE` up."""
    return _Frame(list(records), started, dict(providers or {}), rows, title)


class _Frame:
    def __init__(
        self, records: list[RequestRecord], started: float, names: dict[str, str], rows: int, title: str
    ) -> None:
        self.records, self.started, self.names, self.rows, self.title = records, started, names, rows, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.max_width >= WIDE
        yield Panel(Group(*self._header(wide), self._table(wide)), border_style="blue")

    def _header(self, wide: bool) -> list[Text]:
        records = self.records
        states = Counter(r.state for r in records)
        done = sum(1 for r in records if r.terminal)
        called_back = sum(1 for r in records if r.callback == "ok")
        first = Text.assemble(
            (f"{self.title}  ", "bold"),
            (f"{done}/{len(records)} done  ", "bold"),
            (f"{time.monotonic() - self.started:5.1f}s", "dim"),
        )
        counts = Text.assemble(
            *[(f"{state} {count}  ", STATE_STYLE.get(state, "")) for state, count in sorted(states.items())]
        )
        faults = Text.assemble(
            (f"challenged {sum(r.challenged for r in records)}  ", "yellow"),
            (f"slashed {sum(r.slashed for r in records)}  ", "red"),
            (f"agent callbacks {called_back}/{sum(r.source == 'agent' for r in records)}", "green"),
        )
        timing = Text.assemble(
            *[
                (
                    f"{kind}: result {_ms(t['time_to_result_ms'])}  settle {_ms(t['time_to_settle_ms'])}   ",
                    "cyan",
                )
                for kind, t in sorted(timings(records)["by_auction"].items())
            ]
        )
        if wide:
            return [Text.assemble(first, "  ", counts), faults, timing]
        return [first, counts, faults, timing]

    def _table(self, wide: bool) -> Table:
        table = Table(
            expand=wide,
            show_edge=False,
            pad_edge=False,
            box=box.HEAVY_HEAD if wide else None,
            collapse_padding=not wide,
        )
        columns: tuple[tuple[str, str], ...]
        if wide:
            columns = (
                ("#", "right"),
                ("via", "left"),
                ("model", "left"),
                ("auction", "left"),
                ("proof", "left"),
                ("job", "left"),
                ("bids", "right"),
                ("winner", "left"),
                ("price / max", "right"),
                ("state", "left"),
                ("cb", "left"),
                ("e2e", "right"),
            )
        else:
            columns = (
                ("#", "right"),
                ("via", "left"),
                ("request", "left"),
                ("bids", "right"),
                ("winner", "left"),
                ("price/max", "right"),
                ("state", "left"),
                ("cb", "left"),
                ("e2e", "right"),
            )
        for column, justify in columns:
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        active = [r for r in self.records if r.state != "pending"]
        for record in active[-self.rows :]:
            winner = self.names.get(record.provider or "", (record.provider or "-")[: 10 if wide else 6])
            state = record.state + (" ⚔" if record.challenged else "") + (" ✂" if record.slashed else "")
            mark, style = CALLBACK_MARK.get(record.callback or "", ("", ""))
            bids = str(record.bids) if record.auction == "reverse" else "-"
            e2e = "-" if record.e2e_ms is None else f"{record.e2e_ms / 1000:.1f}s"
            if record.result_ms is not None:  # the quote path: output in hand, then settled
                e2e = f"{record.result_ms:.0f}ms"
            state_text = Text(state, style=STATE_STYLE.get(record.state, ""))
            if wide:
                table.add_row(
                    str(record.index),
                    record.source,
                    record.model,
                    record.auction,
                    record.proof_mode,
                    (record.job_id or "-")[:10],
                    bids,
                    winner,
                    f"{_tokens(record.price_paid)} / {_tokens(record.max_price)}",
                    state_text,
                    Text(mark, style=style),
                    e2e,
                )
            else:
                request = f"{record.model} {record.auction[:3]} {record.proof_mode[:3]}"
                price = f"{_tokens(record.price_paid)}/{_tokens(record.max_price, places=2)}"
                table.add_row(
                    str(record.index),
                    _VIA.get(record.source, record.source),
                    request,
                    bids,
                    winner,
                    price,
                    state_text,
                    Text(mark.replace("callback ", ""), style=style),
                    e2e,
                )
        return table
