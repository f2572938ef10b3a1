"""The solver's tests.

pytest imports this folder as the package ``solver`` (named after its folder), which hides the
real ``solver`` package; the real package's modules (``solver._api``...) are
found through ``__path__`` below, in this checkout, rather than wherever the virtualenv's
editable install points (another worktree's code, otherwise).
"""

from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "solver"))
