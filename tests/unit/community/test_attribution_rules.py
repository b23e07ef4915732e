"""The attribution models over hand-computed examples (funnel.community.campaigns.touch_weights, pure), and the
money rules (ISO 4217 codes, a currency's decimals)."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from funnel.community.campaigns import Touch, check_amount, clean_campaign_fields, currency, touch_weights
from funnel.platform.errors import ValidationFailed

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))  # campaigns, in id order
CONVERTED = datetime(2026, 3, 31, 12, tzinfo=UTC)


def touch(campaign: uuid.UUID, days_before: float, n: int = 0) -> Touch:
    return Touch(uuid.UUID(int=1000 + n), campaign, CONVERTED - timedelta(days=days_before))


# B ten days before, A four days before, C two days before, B at the conversion
TOUCHES = [touch(B, 10, 1), touch(A, 4, 2), touch(C, 2, 3), touch(B, 0, 4)]


def weights(model: str, touches=TOUCHES, *, half_life: float = 7, lookback: int = 30) -> dict[uuid.UUID, Decimal]:
    return touch_weights(CONVERTED, touches, model=model, half_life_days=half_life, lookback_days=lookback)


def test_first_and_last_touch_give_everything_to_one_campaign():
    assert weights("first_touch") == {B: 1}
    assert weights("last_touch") == {B: 1}
    assert weights("first_touch", TOUCHES[1:3]) == {A: 1}
    assert weights("last_touch", TOUCHES[:3]) == {C: 1}


def test_linear_gives_each_touch_one_nth():
    # 4 touches: B twice (2/4), A and C once (1/4 each)
    assert weights("linear") == {B: Decimal("0.5"), A: Decimal("0.25"), C: Decimal("0.25")}


def test_linear_thirds_are_rounded_to_sum_to_exactly_one():
    got = weights("linear", TOUCHES[:3])
    assert sum(got.values()) == 1
    # 1/3 each at 12 decimals; the remainder (1e-12) goes to the lowest campaign id among the equal shares (A)
    assert got == {A: Decimal("0.333333333334"), B: Decimal("0.333333333333"), C: Decimal("0.333333333333")}


def test_time_decay_halves_a_touch_per_half_life():
    # half-life 2 days: ages 10, 4, 2, 0 weigh 1/32, 1/4, 1/2, 1; total 57/32
    # B = (1/32 + 1) / (57/32) = 33/57, A = 8/57, C = 16/57
    got = weights("time_decay", half_life=2)
    assert sum(got.values()) == 1
    expected = {B: Decimal(33) / 57, A: Decimal(8) / 57, C: Decimal(16) / 57}
    for campaign, share in expected.items():
        assert abs(got[campaign] - share) <= Decimal("1e-12")
    assert got[A] == Decimal("0.140350877193")  # 8/57 = 0.14035087719298...


def test_time_decay_of_equal_ages_is_linear():
    same_time = [touch(A, 3, 1), touch(B, 3, 2)]
    assert weights("time_decay", same_time) == {A: Decimal("0.5"), B: Decimal("0.5")}


def test_the_lookback_window_and_touches_after_the_conversion():
    late = touch(A, -1, 9)  # a day after the conversion: not a touch of it
    # B at 10 days is out; A at 4, C at 2 and B at 0 are in
    assert weights("linear", [*TOUCHES, late], lookback=5) == {
        A: Decimal("0.333333333334"), B: Decimal("0.333333333333"), C: Decimal("0.333333333333")}
    assert weights("first_touch", [*TOUCHES, late], lookback=5) == {A: 1}
    assert weights("last_touch", [late]) == {}
    assert weights("linear", [touch(A, 31, 1)], lookback=30) == {}
    assert weights("first_touch", [touch(A, 30, 1)], lookback=30) == {A: 1}  # exactly the lookback: in


def test_ties_in_time_go_by_activity_then_campaign():
    tied = [touch(C, 1, 5), touch(A, 1, 5), touch(B, 1, 4)]
    assert weights("first_touch", tied) == {B: 1}  # activity 1004 before 1005
    assert weights("last_touch", tied) == {C: 1}  # activity 1005, campaign C after A


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError):
        weights("u_shaped")


def test_currencies_and_their_decimals():
    assert currency("jpy", ["body", "currency"]) == "JPY"
    with pytest.raises(ValidationFailed):
        currency("ABC", ["body", "currency"])
    assert check_amount(Decimal("1200"), "JPY", ["body", "amount"]) == Decimal("1200")
    assert check_amount(Decimal("1200.00"), "JPY", ["body", "amount"]) == Decimal("1200.00")  # no fraction really
    with pytest.raises(ValidationFailed):
        check_amount(Decimal("1200.5"), "JPY", ["body", "amount"])
    assert check_amount(Decimal("19.99"), "USD", ["body", "amount"])
    with pytest.raises(ValidationFailed):
        check_amount(Decimal("19.999"), "USD", ["body", "amount"])
    assert check_amount(Decimal("1.234"), "KWD", ["body", "amount"])


def test_time_decay_with_a_tiny_half_life_goes_to_the_latest_touch():
    assert weights("time_decay", TOUCHES[:3], half_life=1e-300) == {C: 1}
    year_one = datetime(1, 1, 2, tzinfo=UTC)
    assert touch_weights(year_one, [Touch(uuid.UUID(int=9), A, year_one)], model="linear", half_life_days=1,
                         lookback_days=3650) == {A: 1}


def test_a_campaigns_budget_fits_its_currency_and_dates_are_ordered():
    current = {"currency": "USD", "budget_total": Decimal("19.99"), "start_date": date(2026, 4, 1), "end_date": None}
    with pytest.raises(ValidationFailed):
        clean_campaign_fields({"currency": "JPY"}, current)  # 19.99 yen
    assert clean_campaign_fields({"currency": "eur"}, current) == {"currency": "EUR"}
    with pytest.raises(ValidationFailed):
        clean_campaign_fields({"end_date": date(2026, 3, 31)}, current)
    with pytest.raises(ValidationFailed):
        clean_campaign_fields({"budget_total": Decimal("-1")}, current)
    with pytest.raises(ValidationFailed):
        clean_campaign_fields({"name": None}, current)
