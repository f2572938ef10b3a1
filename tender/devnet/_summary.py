"""The devnet's results: one record per request, the summary, its JSON, table and chart.

Terminal states partition the requests: every request ends ``settled``, ``refunded`` (never
awarded, or a cheating provider's job unwound after a challenge) or ``expired`` (the provider
missed its deadline); ``slashed`` and ``challenged`` count jobs where that also happened.
:func:`check_invariants` states what must hold for the run to pass.

``payouts`` (when the devnet withdrew them) says, per role, what the markets paid out with
``withdraw`` over the run and what they still owe: the markets credit payments and refunds, so
a provider holds its earnings only once they are withdrawn.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tender.chain import JobState

if TYPE_CHECKING:
    from tender.devnet._workload import Planned

__all__ = [
    "TERMINAL",
    "RequestRecord",
    "Summary",
    "check_invariants",
    "percentile",
    "request_state",
    "summarize",
    "summary_table",
    "write_json",
    "write_png",
]


def request_state(state: JobState) -> str:
    """A request's state word for the job's chain state: the :class:`~tender.chain.JobState`
    name in lower case (``"sent"`` before the job is on the market); a slashed job counts as
    ``refunded`` (its escrow came back), with ``RequestRecord.slashed`` set."""
    if state is JobState.NONE:
        return "sent"
    return request_state(JobState.REFUNDED) if state is JobState.SLASHED else state.name.lower()


#: The states a request may end in (its job's final states); anything else means it was still
#: running.
TERMINAL = frozenset(request_state(s) for s in JobState if s.final)
#: A request that was served and paid for.
SETTLED = request_state(JobState.SETTLED)


@dataclass
class RequestRecord:
    """What happened to one request of the workload.

    Attributes:
        index: position in the workload. source: ``"signed"`` (EIP-712, via solvers),
        ``"onchain"`` (the requester's own ``post``) or ``"agent"`` (the TenderAgent contract).
        state: ``pending`` until it ends in one of :data:`TERMINAL` (or ``failed``: the client
        gave up or the request was refused; a failed record breaks the run).
        callback: agent requests only: ``"pending"`` until the job ends, then ``"ok"`` (the
        market called the agent back and it stored the output), ``"failed"`` (it settled but
        the callback reverted) or ``"none"`` (it did not settle, so no callback was due).
        callback_gas_limit: the intent's ``callbackGasLimit`` (0: no callback).
        result_ms: intent signed to output in the requester's hands: with a verified result
        commitment on the quote path, at settlement on the auction paths.
        settle_ms: intent signed to the job settled on chain.
    """

    index: int
    model: str
    auction: str
    proof_mode: str
    source: str
    max_price: int
    job_id: str | None = None
    state: str = "pending"
    provider: str | None = None
    price_paid: int | None = None
    bids: int = 0
    challenged: bool = False
    slashed: bool = False
    verified_onchain: bool = False
    verified_locally: bool = False
    compensation: int = 0
    auction_ms: float | None = None
    e2e_ms: float | None = None
    gas: dict[str, int] = field(default_factory=dict)
    tx_hashes: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    note: str = ""
    callback: str | None = None
    callback_gas_limit: int = 0
    result_ms: float | None = None
    settle_ms: float | None = None

    @classmethod
    def of(cls, planned: Planned) -> RequestRecord:
        """The record of a request not sent yet."""
        return cls(
            index=planned.index,
            model=planned.model,
            auction=planned.auction,
            proof_mode=planned.proof_mode,
            source=planned.source,
            max_price=planned.max_price,
            note=planned.kind,
            callback="pending" if planned.source == "agent" else None,
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def _p(values: Sequence[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {"p50": r(percentile(values, 50)), "p95": r(percentile(values, 95)), "n": len(values)}  # type: ignore[dict-item]


@dataclass
class Summary:
    """The whole run, as written to ``--json``."""

    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def summarize(
    records: Sequence[RequestRecord],
    *,
    setup_gas: dict[str, int] | None = None,
    wall_s: float | None = None,
    audit: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Summary:
    """Count, time and price the run's requests."""
    states = Counter(r.state for r in records)
    settled = [r for r in records if r.state == SETTLED]
    ratios = [r.price_paid / r.max_price for r in settled if r.price_paid is not None and r.max_price > 0]
    gas: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "count": 0, "mean": 0})
    for record in records:
        for phase, used in record.gas.items():
            gas[phase]["total"] += int(used)
            gas[phase]["count"] += 1
    for entry in gas.values():
        entry["mean"] = entry["total"] // max(1, entry["count"])
    by: dict[str, dict[str, int]] = {}
    for key in ("auction", "proof_mode", "source", "model"):
        by[key] = dict(Counter(str(getattr(r, key)) for r in records))
    providers: dict[str, dict[str, int]] = defaultdict(Counter)  # type: ignore[arg-type]
    for record in records:
        if record.provider:
            providers[record.provider][record.state] += 1
            if record.slashed:
                providers[record.provider]["slashed"] += 1
    agent = [r for r in records if r.source == "agent"]
    data: dict[str, Any] = {
        "requests": len(records),
        "settled": states.get("settled", 0),
        "refunded": states.get("refunded", 0),
        "expired": states.get("expired", 0),
        "failed": sum(1 for r in records if not r.terminal),
        "slashed": sum(1 for r in records if r.slashed),
        "challenged": sum(1 for r in records if r.challenged),
        "proofs_verified_onchain": sum(1 for r in settled if r.verified_onchain),
        "proofs_verified_locally": sum(1 for r in settled if r.verified_locally),
        "zk_settled": sum(1 for r in settled if r.proof_mode == "zk"),
        "agent_requests": len(agent),
        "agent_settled": sum(1 for r in agent if r.state == SETTLED),
        "agent_callbacks": sum(1 for r in agent if r.callback == "ok"),
        "agent_callbacks_failed": sum(1 for r in agent if r.callback == "failed"),
        "all_terminal": all(r.terminal for r in records),
        "auction_latency_ms": _p([r.auction_ms for r in records if r.auction_ms is not None]),
        "e2e_latency_ms": _p([r.e2e_ms for r in settled if r.e2e_ms is not None]),
        "gas": dict(gas),
        # what slashed stakes paid the requesters (and the agent) back, beside their refunds:
        # it is part of what they withdraw (token base units, as strings)
        "compensation": {
            "requesters": str(sum(r.compensation for r in records if r.source != "agent")),
            "agent": str(sum(r.compensation for r in agent)),
        },
        "setup_gas": dict(setup_gas or {}),
        "price_paid_over_max": round(sum(ratios) / len(ratios), 4) if ratios else None,
        "by": by,
        "providers": {k: dict(v) for k, v in providers.items()},
        "wall_s": round(wall_s, 2) if wall_s is not None else None,
        "audit": audit,
        "records": [_record_json(r) for r in records],
    }
    data.update(timings(records))
    if extra:
        data.update(extra)
    return Summary(data)


def _result_ms(record: RequestRecord) -> float | None:
    """When the output reached the requester: the quote path's commitment, else settlement."""
    if record.result_ms is not None:
        return record.result_ms
    return record.e2e_ms if record.state == SETTLED else None


def _settle_ms(record: RequestRecord) -> float | None:
    if record.state != SETTLED:
        return None
    return record.settle_ms if record.settle_ms is not None else record.e2e_ms


def _timing(records: Sequence[RequestRecord]) -> dict[str, Any]:
    results = [v for v in map(_result_ms, records) if v is not None]
    zk = [v for r in records if r.proof_mode == "zk" and (v := _settle_ms(r)) is not None]
    optimistic = [v for r in records if r.proof_mode == "optimistic" and (v := _settle_ms(r)) is not None]
    return {
        "requests": len(records),
        "settled": sum(1 for r in records if r.state == SETTLED),
        "time_to_result_ms": _p(results),
        "time_to_settle_ms": _p(zk),
        "time_to_settle_optimistic_ms": _p(optimistic),
    }


def timings(records: Sequence[RequestRecord]) -> dict[str, Any]:
    """``time_to_result_ms`` (intent signed to output with a verified commitment, or settled),
    ``time_to_settle_ms`` (zk jobs; optimistic ones apart, when their challenge window closed),
    each ``{p50, p95, n}``, overall and under ``by_auction.<kind>``."""
    overall = _timing(records)
    kinds = sorted({r.auction for r in records})
    return {
        "time_to_result_ms": overall["time_to_result_ms"],
        "time_to_settle_ms": overall["time_to_settle_ms"],
        "time_to_settle_optimistic_ms": overall["time_to_settle_optimistic_ms"],
        "by_auction": {kind: _timing([r for r in records if r.auction == kind]) for kind in kinds},
    }


def _record_json(record: RequestRecord) -> dict[str, Any]:
    out = asdict(record)
    for key in ("max_price", "price_paid", "compensation"):
        if out[key] is not None:
            out[key] = str(out[key])
    return out


def check_invariants(summary: Summary, *, expect_faults: bool = False) -> list[str]:
    """What is wrong with a run (empty when it passes).

    Every request is terminal; settled + refunded + expired == requests; every settled zk job
    was verified on-chain; every settled agent request was called back (the agent stored the
    output); with ``expect_faults``, at least one expiry, one challenge and one
    slash happened; the audit, when it ran, is clean.
    """
    d = summary.data
    problems: list[str] = []
    if not d["all_terminal"]:
        stuck = [f"#{r['index']} {r['state']}" for r in d["records"] if r["state"] not in TERMINAL]
        problems.append(f"{len(stuck)} request(s) not terminal: {', '.join(stuck[:8])}")
    if d["settled"] + d["refunded"] + d["expired"] != d["requests"]:
        problems.append(
            f"settled {d['settled']} + refunded {d['refunded']} + expired {d['expired']} != requests {d['requests']}"
        )
    if d["proofs_verified_onchain"] != d["zk_settled"]:
        problems.append(
            f"{d['zk_settled'] - d['proofs_verified_onchain']} settled zk job(s) not verified on-chain"
        )
    missed = [
        f"#{r['index']} callback {r.get('callback')}"
        for r in d["records"]
        if r["source"] == "agent" and r["state"] == SETTLED and r.get("callback") != "ok"
    ]
    if missed or d.get("agent_callbacks", 0) != d.get("agent_settled", 0):
        problems.append(
            f"{d.get('agent_settled', 0) - d.get('agent_callbacks', 0)} settled agent job(s) without the "
            f"agent's callback: {', '.join(missed[:8])}"
        )
    ungassed = [
        f"#{r['index']}"
        for r in d["records"]
        if r["source"] == "agent" and r["job_id"] and not r.get("callback_gas_limit")
    ]
    if ungassed:
        problems.append(f"agent request(s) posted without callback gas: {', '.join(ungassed[:8])}")
    if expect_faults:
        for key in ("expired", "challenged", "slashed"):
            if d[key] < 1:
                problems.append(f"the misbehaving provider should have caused at least one {key} job")
    if d.get("honest_slashed", 0):
        problems.append(f"{d['honest_slashed']} slash(es) of providers without an injected fault")
    audit = d.get("audit")
    if audit is not None and not audit.get("clean", False):
        problems.append(f"audit not clean: {audit.get('detail', '')}".strip())
    return problems


def write_json(summary: Summary, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.data, indent=2, default=str) + "\n")
    return path


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def summary_table(summary: Summary) -> Table:
    """The end-of-run table for people."""
    d = summary.data
    table = Table(title="Tender devnet: summary", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("requests", str(d["requests"])),
        ("settled", f"[green]{d['settled']}[/]"),
        ("refunded", str(d["refunded"])),
        ("expired", f"[yellow]{d['expired']}[/]"),
        ("challenged", f"[yellow]{d['challenged']}[/]"),
        ("providers slashed (jobs)", f"[red]{d['slashed']}[/]"),
        ("zk proofs verified on-chain", f"{d['proofs_verified_onchain']} / {d['zk_settled']}"),
        ("agent requests (TenderAgent)", str(d["agent_requests"])),
        ("agent callbacks / agent settled", f"{d['agent_callbacks']} / {d['agent_settled']}"),
        (
            "auction latency p50 / p95",
            f"{_fmt_ms(d['auction_latency_ms']['p50'])} / {_fmt_ms(d['auction_latency_ms']['p95'])}",
        ),
        (
            "end-to-end latency p50 / p95",
            f"{_fmt_ms(d['e2e_latency_ms']['p50'])} / {_fmt_ms(d['e2e_latency_ms']['p95'])}",
        ),
        *[
            row
            for kind, t in sorted(d.get("by_auction", {}).items())
            for row in (
                (
                    f"time to result, {kind}",
                    f"{_fmt_ms(t['time_to_result_ms']['p50'])} / {_fmt_ms(t['time_to_result_ms']['p95'])}",
                ),
                (
                    f"time to settle (zk), {kind}",
                    f"{_fmt_ms(t['time_to_settle_ms']['p50'])} / {_fmt_ms(t['time_to_settle_ms']['p95'])}",
                ),
            )
        ],
        ("honest providers slashed", str(d.get("honest_slashed", "-"))),
        (
            "price paid / max price (mean)",
            "-" if d["price_paid_over_max"] is None else f"{d['price_paid_over_max']:.3f}",
        ),
    ]
    for phase, entry in sorted(d["gas"].items()):
        rows.append((f"gas {phase} (mean of {entry['count']})", f"{entry['mean']:,}"))
    if d.get("wall_s") is not None:
        rows.append(("wall time", f"{d['wall_s']:.1f} s"))
    rows.extend(_payout_rows(d.get("payouts"), d.get("compensation")))
    if d.get("tokens"):
        from tender.devnet._tokens import token_rows

        rows.extend(token_rows(d["tokens"]))
    audit = d.get("audit")
    if audit is not None:
        rows.append(
            ("audit", "[green]clean[/]" if audit.get("clean") else f"[red]{audit.get('detail', 'failed')}[/]")
        )
    for what, value in rows:
        table.add_row(what, value)
    return table


def _tokens(amount: Any) -> str:
    return f"{int(amount) / 1e18:,.4f}"


def _payout_rows(
    payouts: dict[str, Any] | None, compensation: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """Per role (and per provider): tokens withdrawn from the markets / still owed there; for the
    requesters and the agent, how much of it was compensation from slashed stakes (a refund
    plus compensation can exceed what was escrowed: the demo's faulty provider stakes 5,000)."""
    if not payouts:
        return []
    rows: list[tuple[str, str]] = []
    for role in ("providers", "requesters", "agent", "verifier"):
        entry = payouts.get(role)
        if not entry:
            continue
        rows.append(
            (
                f"withdrawn by {role} / still owed (tokens)",
                f"{_tokens(entry['withdrawn'])} / {_tokens(entry['owed'])}",
            )
        )
        if compensation and role in compensation:
            rows.append(("  of which slashing compensation", _tokens(compensation[role])))
        if role == "providers":
            for name, account in sorted(entry.get("accounts", {}).items()):
                rows.append((f"  {name}", f"{_tokens(account['withdrawn'])} / {_tokens(account['owed'])}"))
    for error in payouts.get("errors", []):
        rows.append(("withdraw failed", f"[red]{error}[/]"))
    return rows


def write_png(records: Iterable[RequestRecord], path: Path, *, token_decimals: int = 18) -> Path:
    """End-to-end latency distribution and clearing price vs max price, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    scale = 10.0**token_decimals
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for mode, colour in (("zk", "tab:blue"), ("optimistic", "tab:orange")):
        values = [
            r.e2e_ms / 1000 for r in records if r.state == SETTLED and r.proof_mode == mode and r.e2e_ms
        ]
        if values:
            left.hist(
                values,
                bins=min(20, max(5, len(values))),
                alpha=0.7,
                color=colour,
                label=f"{mode} ({len(values)})",
            )
    left.set_xlabel("end-to-end latency (s)")
    left.set_ylabel("settled requests")
    left.set_title("End-to-end latency")
    if left.get_legend_handles_labels()[0]:
        left.legend()
    top = 0.0
    for auction, marker in (("reverse", "o"), ("dutch", "^")):
        pts = [
            (r.max_price / scale, r.price_paid / scale)
            for r in records
            if r.state == SETTLED and r.auction == auction and r.price_paid is not None
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            right.scatter(xs, ys, marker=marker, alpha=0.75, label=f"{auction} ({len(pts)})")
            top = max(top, *xs)
    if top:
        right.plot([0, top], [0, top], "k--", linewidth=0.8, label="price = max")
    right.set_xlabel("max price (tokens)")
    right.set_ylabel("clearing price (tokens)")
    right.set_title("Clearing price vs max price")
    if right.get_legend_handles_labels()[0]:
        right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
