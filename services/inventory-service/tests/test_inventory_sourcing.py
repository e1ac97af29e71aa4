"""The sourcing rule, branch by branch, and how an address is located."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import pytest_asyncio
from inventory_kit import BERLIN, LONDON, MUNICH, Kit, address, inventory_kit, reserve

from inventory_service.domain.allocation import LineRequest, Pick, SourcingPreference, allocate
from inventory_service.domain.geo import COUNTRY_CENTRES, Location, distance_km, locate
from oms_events.messages import StockReserved

NEAREST = SourcingPreference.NEAREST
MOST_STOCK = SourcingPreference.MOST_STOCK
# A customer in Hamburg: Berlin ~255 km, Munich ~610 km, London ~720 km.
FROM_HAMBURG = {"WH-BER": 255.0, "WH-MUC": 612.0, "WH-LON": 720.0}


def test_nearest_single_warehouse_wins_over_the_one_with_more_stock() -> None:
    result = allocate(
        [LineRequest("A", 2)],
        {("A", "WH-BER"): 2, ("A", "WH-LON"): 50},
        preference=NEAREST,
        distances_km=FROM_HAMBURG,
    )
    assert result.picks == (Pick("A", "WH-BER", 2),)


def test_one_warehouse_for_the_whole_order_beats_a_nearer_split() -> None:
    result = allocate(
        [LineRequest("A", 1), LineRequest("B", 1)],
        {("A", "WH-BER"): 5, ("B", "WH-BER"): 0, ("A", "WH-LON"): 1, ("B", "WH-LON"): 1},
        preference=NEAREST,
        distances_km=FROM_HAMBURG,
    )
    assert set(result.picks) == {Pick("A", "WH-LON", 1), Pick("B", "WH-LON", 1)}


def test_most_stock_preference_ignores_distance() -> None:
    result = allocate(
        [LineRequest("A", 2)],
        {("A", "WH-BER"): 2, ("A", "WH-LON"): 50},
        preference=MOST_STOCK,
        distances_km=FROM_HAMBURG,
    )
    assert result.picks == (Pick("A", "WH-LON", 2),)


def test_an_address_that_cannot_be_located_falls_back_to_most_stock_and_unlocated_warehouses_come_last() -> None:
    stock = {("A", "WH-BER"): 2, ("A", "WH-LON"): 50, ("A", "WH-X"): 90}
    assert allocate([LineRequest("A", 1)], stock, preference=NEAREST, distances_km={}).picks == (Pick("A", "WH-X", 1),)
    # WH-X has no coordinates: located warehouses first, however much WH-X holds.
    located = allocate([LineRequest("A", 1)], stock, preference=NEAREST, distances_km=FROM_HAMBURG)
    assert located.picks == (Pick("A", "WH-BER", 1),)


def test_a_split_takes_from_the_nearest_first() -> None:
    result = allocate(
        [LineRequest("A", 6)],
        {("A", "WH-BER"): 2, ("A", "WH-MUC"): 3, ("A", "WH-LON"): 9},
        preference=NEAREST,
        distances_km=FROM_HAMBURG,
    )
    assert result.picks == (Pick("A", "WH-LON", 6),)  # one warehouse can: no split
    split = allocate(
        [LineRequest("A", 6)],
        {("A", "WH-BER"): 2, ("A", "WH-MUC"): 3, ("A", "WH-LON"): 4},
        preference=NEAREST,
        distances_km=FROM_HAMBURG,
    )
    assert split.picks == (Pick("A", "WH-BER", 2), Pick("A", "WH-MUC", 3), Pick("A", "WH-LON", 1))


def test_a_split_by_most_stock_takes_from_the_fullest_first() -> None:
    split = allocate(
        [LineRequest("A", 6)],
        {("A", "WH-BER"): 2, ("A", "WH-MUC"): 3, ("A", "WH-LON"): 4},
        preference=MOST_STOCK,
        distances_km=FROM_HAMBURG,
    )
    assert split.picks == (Pick("A", "WH-LON", 4), Pick("A", "WH-MUC", 2))


def test_shortage_allocates_nothing_whatever_the_preference() -> None:
    for preference in SourcingPreference:
        result = allocate([LineRequest("A", 9)], {("A", "WH-BER"): 2}, preference=preference, distances_km=FROM_HAMBURG)
        assert not result.complete
        assert result.picks == ()


@pytest.mark.parametrize(
    ("country", "postal_code", "expected"),
    [
        ("DE", "10115", Location(52.52, 13.40)),  # Berlin zone
        ("DE", "80331", Location(48.14, 11.58)),  # Munich zone
        ("GB", "SW1A 1AA", Location(51.51, -0.13)),  # London area
        ("GB", "EH1 1YZ", Location(55.95, -3.19)),  # Edinburgh area
        ("GB", "ZE1 0AA", COUNTRY_CENTRES["GB"]),  # an area without its own point: the country's centre
        ("FR", "75001", COUNTRY_CENTRES["FR"]),
        ("XX", "123", None),
    ],
)
def test_addresses_are_located_by_country_and_postcode(
    country: str, postal_code: str, expected: Location | None
) -> None:
    assert locate(country, postal_code) == expected


def test_distances_are_great_circle_kilometres() -> None:
    berlin_london = distance_km(Location(52.52, 13.40), Location(51.51, -0.13))
    assert 925 < berlin_london < 935


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[Kit]:
    async with inventory_kit(preference=NEAREST) as k:
        yield k


async def test_a_reservation_goes_to_the_warehouse_nearest_to_the_shipping_address(kit: Kit) -> None:
    await kit.stock("A", {"WH-BER": 5, "WH-LON": 5, "WH-MUC": 5}, (BERLIN, LONDON, MUNICH))
    to_munich, to_leeds, to_nowhere = uuid4(), uuid4(), uuid4()
    await kit.harness.send(reserve(to_munich, ("A", 1), to=address("DE", "81675")))
    await kit.harness.send(reserve(to_leeds, ("A", 1), to=address("GB", "LS1 4AP")))
    await kit.harness.send(reserve(to_nowhere, ("A", 1)))  # no address (an older order-service): most stock
    chosen = {}
    for order_id in (to_munich, to_leeds, to_nowhere):
        [answer] = await kit.answers(order_id)
        assert isinstance(answer, StockReserved)
        chosen[order_id] = answer.allocations[0].warehouse_id
    assert chosen[to_munich] == "WH-MUC"
    assert chosen[to_leeds] == "WH-LON"
    assert chosen[to_nowhere] == "WH-BER"  # Munich and London hold 4 each by then, Berlin 5
