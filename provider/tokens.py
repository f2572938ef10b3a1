"""``python -m provider.tokens``: the same as ``tender provider tokens`` (a token desk on
``TokenMarket``; see :func:`provider.cli.tokens`)."""

from __future__ import annotations

from provider.cli import tokens

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``tender provider tokens`` with ``argv``; the exit status (2 for bad input)."""
    try:
        tokens.main(args=argv, prog_name="python -m provider.tokens", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
