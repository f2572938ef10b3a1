"""Serve a token model on ``TokenMarket``: ``python -m provider.tokens --model models/lm ...``.

The provider's key comes from the environment (``TENDER_PRIVATE_KEY``), never the command line.
See :mod:`provider._tokens` for the HTTP API (``/tokens/quote``, ``/tokens/stream``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from provider._tokens import TokenDesk, token_app
from tender.chain import TokenMarket, TxSender, connect
from tender.tokens import TokenModel

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provider.tokens", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the token model's folder")
    parser.add_argument("--model-id", required=True, help="its id in the market (0x + 64 hex)")
    parser.add_argument("--rpc", required=True, help="the chain's JSON-RPC URL")
    parser.add_argument("--market", required=True, help="the TokenMarket address")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gpu-hour-cost", type=int, default=2 * 10**18, help="token units per GPU-hour")
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--misbehave", choices=("cheap", "truncate"), default=None, help="devnet cheats")
    parser.add_argument("--cheap-model", type=Path, default=None, help="what --misbehave cheap serves")
    args = parser.parse_args(argv)
    key = os.environ.get("TENDER_PRIVATE_KEY")
    if not key:
        sys.stderr.write("TENDER_PRIVATE_KEY: the provider's key is not set\n")
        return 2
    model_id = args.model_id.removeprefix("0x")
    if len(model_id) != 64:
        sys.stderr.write("--model-id: 32 bytes as 0x + 64 hex digits\n")
        return 2
    if args.misbehave == "cheap" and args.cheap_model is None:
        sys.stderr.write("--cheap-model: needed with --misbehave cheap\n")
        return 2
    w3 = connect(args.rpc)
    market = TokenMarket(w3, args.market, sender=TxSender(w3, key))
    desk = TokenDesk(
        model=TokenModel.load(args.model),
        market=market,
        key=key,
        model_id=bytes.fromhex(model_id),
        gpu_hour_cost=args.gpu_hour_cost,
        margin=args.margin,
        misbehave=args.misbehave,
        cheap_model=TokenModel.load(args.cheap_model) if args.cheap_model else None,
    )
    desk.warm_up()
    uvicorn.run(token_app(desk), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
