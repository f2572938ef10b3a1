"""The Tender solver: follows intents, asks providers for quotes, bids or fills for the best
one, hands the won job's input to its provider and follows it to settlement.

Run it with ``tender solver run --config solver.toml``; embed it with::

    from solver import Solver, SolverSection
    from tender.daemon import serve
    serve(Solver(section, chain_section))
"""

from solver._config import BreakerSection, GasSection, ProviderEntry, SolverConfig, SolverSection
from solver._errors import JobError, ProviderUnavailable, QuoteError, SolverError, StoreError
from solver._policy import Action, AuctionState, BidAction, Economics, FillAction, Offer, Pass, Terms, decide
from solver._solver import Solver

__all__ = [
    "Action",
    "AuctionState",
    "BidAction",
    "BreakerSection",
    "Economics",
    "FillAction",
    "GasSection",
    "JobError",
    "Offer",
    "Pass",
    "ProviderEntry",
    "ProviderUnavailable",
    "QuoteError",
    "Solver",
    "SolverConfig",
    "SolverError",
    "SolverSection",
    "StoreError",
    "Terms",
    "decide",
]
