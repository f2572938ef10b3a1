"""Thin wrappers over the EZKL calls that need care: output capture, asyncio, SRS files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ezkl as _ezkl

from tender.models._errors import SrsError

if TYPE_CHECKING:
    from tender.models._bundle import Bundle

#: The EZKL module, untyped: its stubs mark optional arguments as required and omit
#: ``__version__`` and the ``PyRunArgs`` attributes, so every call goes through this name.
ezkl: Any = _ezkl


@contextlib.contextmanager
def captured_output(log_path: Path) -> Iterator[None]:
    """Send what native code prints on fds 1 and 2 (EZKL's calibration tables) to a file.

    Python's ``sys.stdout`` redirection cannot catch Rust's ``println!``; this swaps the file
    descriptors themselves for the duration and restores them afterwards. The swap is
    process-wide: other threads' output lands in the log meanwhile, so it is used only
    around build steps, never around :func:`tender.models.prove` (which prints nothing).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with log_path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def self_check_proof(scratch: Path, bundle: Bundle, log: Path) -> tuple[Any, bool]:
    """Prove ``scratch/witness.json`` into ``scratch/proof.json`` and verify it (a build's
    self-check; EZKL's output goes to ``log``): the proof EZKL returned, and whether it verifies."""
    with captured_output(log):
        proof = ezkl.prove(
            str(scratch / "witness.json"),
            str(bundle.compiled),
            str(bundle.pk),
            str(scratch / "proof.json"),
            srs_path=str(bundle.srs),
        )
        ok = ezkl.verify(
            str(scratch / "proof.json"), str(bundle.settings), str(bundle.vk), srs_path=str(bundle.srs)
        )
    return proof, bool(ok)


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion, from plain code or from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def write_evm_verifier(vk: Path, settings: Path, srs: Path, sol_path: Path, abi_path: Path) -> None:
    """Render EZKL's Solidity verifier into ``sol_path``.

    ``ezkl.create_evm_verifier`` writes the file and then tries to download solc to compile
    it, which fails offline; that failure is ignored once the file exists (Tender compiles
    with its own solc). Any other failure is raised.
    """
    sol_path.unlink(missing_ok=True)

    async def render() -> Any:
        return await ezkl.create_evm_verifier(
            str(vk), str(settings), str(sol_path), str(abi_path), srs_path=str(srs)
        )

    try:
        run_coroutine(render)
    except RuntimeError:
        if not sol_path.is_file() or sol_path.stat().st_size == 0:
            raise


def srs_logrows(path: Path) -> int:
    """The ``k`` of a KZG SRS file (halo2 format: a little-endian u32 first).

    Raises:
        SrsError: the file is missing or too short to be an SRS.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise SrsError(f"cannot read SRS {path}: {exc}") from exc
    if len(head) < 4:
        raise SrsError(f"{path} is not an SRS file")
    k = int.from_bytes(head, "little")
    if not 1 <= k <= 28:
        raise SrsError(f"{path} is not a halo2 KZG SRS file (k = {k})")
    return k


def dev_srs(folder: Path, logrows: int) -> Path:
    """The locally generated (insecure) SRS for ``logrows``, made once and kept in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dev-k{logrows}.srs"
    if not path.is_file():
        partial = folder / f".dev-k{logrows}.{os.getpid()}.partial"
        ezkl.gen_srs(str(partial), logrows)
        os.replace(partial, path)
    return path
