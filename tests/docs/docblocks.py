"""The fenced code blocks of the docs, and how ``tests/docs`` runs them.

A ```sh block runs as written, in one bash session per document (so ``export`` and ``source``
carry over to the next block); a ```python block is saved to a file and run with ``python``.
The first line of a block may say how the test treats it, visibly, as a comment:

* ``# docs-test: skip (why)``: not run (``make demo`` itself, the network the test starts, a
  code fragment);
* ``# docs-test: background, ready when <URL> answers (why)``: a daemon; started in the
  background, the document's next block waits until ``<URL>`` answers, and it is stopped when
  the document is done.

Any other ``# docs-test:`` line is an error, so that a typo never silently skips a block.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "DocsTestError", "blocks", "script"]

_FENCE = re.compile(r"^```(\w+)?\s*$")
_SKIP = re.compile(r"^#\s*docs-test:\s*skip\b")
_BACKGROUND = re.compile(r"^#\s*docs-test:\s*background, ready when (\S+) answers\b")
_ANY = re.compile(r"^#\s*docs-test:")

#: Languages run as shell; Python blocks are run as programs.
SHELL = frozenset({"sh", "bash", "shell"})


class DocsTestError(ValueError):
    """A block annotation the test does not understand."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and what the test does with it."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mode: str  # "run", "skip" or "background"
    ready_url: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every ```sh and ```python block of ``path``, in order, with its mode."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        lang, start = (match.group(1) or ""), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in SHELL and lang != "python":
            continue
        first = body[0].strip() if body else ""
        mode, url = "run", None
        if _SKIP.match(first):
            mode = "skip"
        elif (bg := _BACKGROUND.match(first)) is not None:
            mode, url = "background", bg.group(1)
        elif _ANY.match(first):
            raise DocsTestError(f"{path.name}:{start + 1}: unknown annotation {first!r}")
        if mode == "background" and lang not in SHELL:
            raise DocsTestError(f"{path.name}:{start + 1}: only shell blocks run in the background")
        found.append(
            Block(path, start + 1, "sh" if lang in SHELL else lang, "\n".join(body) + "\n", mode, url)
        )
    return found


def script(doc: list[Block], *, workdir: Path) -> str:
    """One bash script running the document's blocks in order; it stops at the first command
    that fails, naming the block and the command. Its background daemons share its process
    group: whoever runs it stops them with that group."""
    out = [
        "set -eo pipefail",
        "trap 'rc=$?; echo \"docs-test: FAILED (exit $rc) in block $BLOCK: $BASH_COMMAND\" >&2' ERR",
        f"cd {shlex.quote(str(workdir))}",
    ]
    for n, block in enumerate(doc):
        if block.mode == "skip":
            continue
        out.append(f'BLOCK={shlex.quote(block.where)}; echo "docs-test: block $BLOCK" >&2')
        if block.lang == "python":
            name = f"docs-block-{n}.py"
            out.append(f"cat > {name} <<'DOCS_TEST_EOF'\n{block.text}DOCS_TEST_EOF")
            out.append(f"python {name}")
        elif block.mode == "background":
            log = f"docs-block-{n}.log"
            out.append(f"( {block.text.strip()}\n) > {log} 2>&1 &")
            url = shlex.quote(block.ready_url or "")
            out.append(
                f"for _ in $(seq 1 900); do curl -sf {url} > /dev/null && break; "
                f'kill -0 $! 2>/dev/null || {{ echo "docs-test: daemon of $BLOCK exited" >&2; cat {log} >&2; exit 1; }}; '
                "sleep 0.5; done"
            )
            out.append(
                f'curl -sf {url} > /dev/null || {{ echo "docs-test: {url} never answered" >&2; cat {log} >&2; exit 1; }}'
            )
        else:
            out.append(block.text)
    out.append('echo "docs-test: all blocks passed" >&2')
    return "\n".join(out) + "\n"
