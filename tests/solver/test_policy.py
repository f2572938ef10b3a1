"""Property tests of the bidding policy (pure: no chain, no network)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from solver._policy import (
    AuctionState,
    BidAction,
    Economics,
    FillAction,
    Offer,
    Pass,
    Terms,
    decide,
    floor_price,
    score,
)
from tender.intents import AuctionType

PROFILE = settings(max_examples=300, derandomize=True, deadline=None)

PROVIDERS = [f"0x{i:040x}" for i in range(1, 9)]
NOW = 1_000

offers_st = st.lists(
    st.builds(
        Offer,
        provider=st.sampled_from(PROVIDERS),
        price=st.integers(0, 10**20),
        latency_s=st.integers(1, 600),
        expires_at=st.integers(NOW - 10, NOW + 100),
    ),
    max_size=8,
)
terms_st = st.builds(
    Terms,
    auction_type=st.sampled_from(list(AuctionType)),
    max_price=st.integers(1, 10**21),
    price_weight_bps=st.integers(0, 10_000),
    max_latency=st.integers(1, 900),
)
econ_st = st.builds(
    Economics,
    gas_cost=st.integers(0, 10**18),
    margin_bps=st.integers(0, 5_000),
    min_margin=st.integers(0, 10**16),
    latency_buffer_s=st.integers(0, 30),
)
state_st = st.builds(
    AuctionState,
    now=st.just(NOW),
    best_price=st.one_of(st.none(), st.integers(0, 10**21)),
    best_latency=st.integers(1, 900),
    current_price=st.one_of(st.none(), st.integers(0, 10**21)),
)


@PROFILE
@given(terms_st, offers_st, econ_st, state_st)
def test_decide_never_above_max_price_nor_below_cost(terms, offers, econ, state) -> None:
    action = decide(terms, offers, econ, state)
    if isinstance(action, Pass):
        return
    assert action.price <= terms.max_price
    assert action.cost == action.offer.price + econ.gas_cost
    assert action.price >= floor_price(action.offer, econ)[1] >= action.cost
    assert action.latency <= terms.max_latency
    assert action.offer.expires_at > NOW
    assert action.offer in offers


@PROFILE
@given(terms_st, offers_st, econ_st, state_st)
def test_decide_reverse_bid_strictly_beats_standing_best(terms, offers, econ, state) -> None:
    terms = Terms(AuctionType.REVERSE, terms.max_price, terms.price_weight_bps, terms.max_latency)
    action = decide(terms, offers, econ, state)
    assert not isinstance(action, FillAction)
    if isinstance(action, BidAction) and state.best_price is not None:
        assert state.best_latency is not None
        mine = score(action.price, action.latency, terms=terms)
        assert mine < score(state.best_price, state.best_latency, terms=terms)


@PROFILE
@given(terms_st, offers_st, econ_st, state_st)
def test_decide_dutch_fills_only_at_covering_current_price(terms, offers, econ, state) -> None:
    terms = Terms(AuctionType.DUTCH, terms.max_price, terms.price_weight_bps, terms.max_latency)
    action = decide(terms, offers, econ, state)
    assert not isinstance(action, BidAction)
    if isinstance(action, FillAction):
        assert action.price == state.current_price
    elif action.wait_for_price is not None:
        assert state.current_price is None or state.current_price < action.wait_for_price


@PROFILE
@given(
    st.integers(1, 10**21),
    st.integers(1, 900),
    offers_st,
    econ_st,
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_decide_monotone_in_price_weight(max_price, max_latency, offers, econ, w1, w2) -> None:
    """More weight on price never makes the chosen bid dearer (nor faster)."""
    lo, hi = sorted((w1, w2))
    state = AuctionState(now=NOW)
    a = decide(Terms(AuctionType.REVERSE, max_price, lo, max_latency), offers, econ, state)
    b = decide(Terms(AuctionType.REVERSE, max_price, hi, max_latency), offers, econ, state)
    assert isinstance(a, Pass) == isinstance(b, Pass)
    if isinstance(a, BidAction) and isinstance(b, BidAction):
        assert b.price <= a.price
        if b.price < a.price:
            assert b.latency >= a.latency


def test_decide_picks_best_score_for_weights() -> None:
    cheap_slow = Offer(PROVIDERS[0], price=100, latency_s=100)
    dear_fast = Offer(PROVIDERS[1], price=300, latency_s=10)
    econ = Economics(gas_cost=0)
    state = AuctionState(now=NOW)
    by_price = decide(Terms(AuctionType.REVERSE, 1000, 10_000, 200), [cheap_slow, dear_fast], econ, state)
    by_latency = decide(Terms(AuctionType.REVERSE, 1000, 0, 200), [cheap_slow, dear_fast], econ, state)
    assert isinstance(by_price, BidAction)
    assert by_price.provider == cheap_slow.provider
    assert isinstance(by_latency, BidAction)
    assert by_latency.provider == dear_fast.provider


def test_decide_adds_gas_and_margin() -> None:
    offer = Offer(PROVIDERS[0], price=1000, latency_s=5)
    action = decide(
        Terms(AuctionType.REVERSE, 10**6, 5_000, 60),
        [offer],
        Economics(gas_cost=200, margin_bps=1_000, min_margin=50, latency_buffer_s=2),
        AuctionState(now=NOW),
    )
    assert isinstance(action, BidAction)
    assert (action.cost, action.price, action.latency) == (1200, 1320, 7)


def test_decide_dutch_waits_then_fills() -> None:
    offers = [Offer(PROVIDERS[0], price=500, latency_s=50), Offer(PROVIDERS[1], price=800, latency_s=5)]
    terms = Terms(AuctionType.DUTCH, 2000, 5_000, 100)
    econ = Economics(gas_cost=100)
    early = decide(terms, offers, econ, AuctionState(now=NOW, current_price=300))
    assert isinstance(early, Pass)
    assert early.wait_for_price == 600
    mid = decide(terms, offers, econ, AuctionState(now=NOW, current_price=700))
    assert isinstance(mid, FillAction)
    assert mid.provider == PROVIDERS[0]
    late = decide(terms, offers, econ, AuctionState(now=NOW, current_price=950))
    assert isinstance(late, FillAction)
    assert late.provider == PROVIDERS[1]


def test_reverse_bids_never_promise_more_latency_than_a_book_word_holds() -> None:
    """A reverse book word holds 15 bits of latency: an offer slower than that is passed over even when the
    deadline leaves room (the chain would refuse the bid with LatencyTooLong); a Dutch fill takes it."""
    from tender.intents import MAX_BOOK_LATENCY

    econ = Economics(gas_cost=0, margin_bps=0, min_margin=0, latency_buffer_s=0)
    slow = Offer(provider=PROVIDERS[0], price=10, latency_s=MAX_BOOK_LATENCY + 1, expires_at=NOW + 60)
    ok = Offer(provider=PROVIDERS[1], price=20, latency_s=MAX_BOOK_LATENCY, expires_at=NOW + 60)
    reverse = Terms(AuctionType.REVERSE, 10**18, 10_000, 10 * MAX_BOOK_LATENCY)
    assert isinstance(decide(reverse, [slow], econ, AuctionState(NOW)), Pass)
    action = decide(reverse, [slow, ok], econ, AuctionState(NOW))
    assert isinstance(action, BidAction)
    assert action.provider == PROVIDERS[1]
    assert action.latency == MAX_BOOK_LATENCY
    dutch = Terms(AuctionType.DUTCH, 10**18, 10_000, 10 * MAX_BOOK_LATENCY)
    fill = decide(dutch, [slow], econ, AuctionState(NOW, current_price=10**18))
    assert isinstance(fill, FillAction)
