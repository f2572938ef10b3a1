"""What an audit finds: per-job checks, a rich table for people, JSON for machines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"


#: The checks of a job audit, in the order they are shown.
CHECKS: tuple[str, ...] = ("events", "model", "input", "proof", "amounts")


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one job: its name, outcome and a human explanation."""

    name: str
    status: Status
    detail: str = ""

    @classmethod
    def of(cls, name: str, problems: list[str], ok_detail: str) -> Check:
        """``name`` failed with ``problems``, or passed (``ok_detail`` says what held) when there are none."""
        if problems:
            return cls(name, Status.FAIL, "; ".join(problems))
        return cls(name, Status.OK, ok_detail)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": str(self.status), "detail": self.detail}


@dataclass(slots=True)
class JobAudit:
    """Everything the auditor concluded about one job."""

    job_id: str
    market: str
    state: str
    proof_mode: str
    checks: list[Check] = field(default_factory=list)
    amounts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, status: Status, detail: str = "") -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def ok(self) -> bool:
        return all(check.status is not Status.FAIL for check in self.checks)

    def status_of(self, name: str) -> Status | None:
        for check in self.checks:
            if check.name == name:
                return check.status
        return None

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status is Status.FAIL]

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "market": self.market,
            "state": self.state,
            "proofMode": self.proof_mode,
            "ok": self.ok,
            "checks": [check.to_json() for check in self.checks],
            "amounts": {key: str(value) for key, value in self.amounts.items()},
        }


@dataclass(slots=True)
class AuditReport:
    """The audit of a range of jobs."""

    chain_id: int
    from_block: int
    to_block: int
    jobs: list[JobAudit] = field(default_factory=list)
    global_checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(job.ok for job in self.jobs) and all(
            c.status is not Status.FAIL for c in self.global_checks
        )

    @property
    def failed_jobs(self) -> list[JobAudit]:
        return [job for job in self.jobs if not job.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chainId": self.chain_id,
            "fromBlock": self.from_block,
            "toBlock": self.to_block,
            "jobs": len(self.jobs),
            "failed": [job.job_id for job in self.failed_jobs],
            "seconds": round(self.seconds, 3),
            "global": [check.to_json() for check in self.global_checks],
            "results": [job.to_json() for job in self.jobs],
        }

    def __rich__(self) -> RenderableType:
        return render(self)


_STYLE = {Status.OK: ("✓", "green"), Status.FAIL: ("✗", "bold red"), Status.SKIP: ("-", "dim")}


def _cell(check: Check | None) -> Text:
    if check is None:
        return Text("")
    mark, style = _STYLE[check.status]
    return Text(mark, style=style)


def render(report: AuditReport) -> RenderableType:
    """The report as a rich table (one row a job, one column a check) and its failures."""
    table = Table(
        title=f"Tender audit · chain {report.chain_id} · blocks {report.from_block}..{report.to_block}",
        caption=f"{len(report.jobs)} jobs, {len(report.failed_jobs)} failed, {report.seconds:.2f}s",
    )
    table.add_column("job", no_wrap=True)
    table.add_column("market")
    table.add_column("mode")
    table.add_column("state")
    for name in CHECKS:
        table.add_column(name, justify="center")
    for job in report.jobs:
        by_name = {check.name: check for check in job.checks}
        table.add_row(
            job.job_id[:10] + "…",
            job.market,
            job.proof_mode,
            job.state,
            *(_cell(by_name.get(name)) for name in CHECKS),
            style=None if job.ok else "red",
        )
    parts: list[RenderableType] = [table]
    problems = [(job.job_id, check) for job in report.failed_jobs for check in job.failures()] + [
        ("(deployment)", check) for check in report.global_checks if check.status is Status.FAIL
    ]
    if problems:
        detail = Table(title="Mismatches", title_style="bold red", show_lines=False)
        detail.add_column("job", no_wrap=True)
        detail.add_column("check")
        detail.add_column("detail")
        for job_id, check in problems:
            detail.add_row(job_id, check.name, check.detail)
        parts.append(detail)
    verdict = (
        Text("audit passed", style="bold green") if report.ok else Text("audit FAILED", style="bold red")
    )
    parts.append(verdict)
    return Group(*parts)


def summarise(audits: Iterable[JobAudit]) -> dict[str, int]:
    """How many jobs passed and failed each check."""
    counts: dict[str, int] = {}
    for job in audits:
        for check in job.checks:
            key = f"{check.name}.{check.status}"
            counts[key] = counts.get(key, 0) + 1
    return counts
