"""The warehouse-choosing rule."""

import pytest

from inventory_service.domain.allocation import LineRequest, Pick, Shortfall, allocate


def test_one_warehouse_for_the_whole_order_when_possible() -> None:
    result = allocate(
        [LineRequest("A", 2), LineRequest("B", 1)],
        {("A", "WH-1"): 5, ("B", "WH-1"): 0, ("A", "WH-2"): 2, ("B", "WH-2"): 3},
    )
    assert result.complete
    assert set(result.picks) == {Pick("A", "WH-2", 2), Pick("B", "WH-2", 1)}


def test_among_warehouses_that_can_serve_all_the_one_with_most_stock_wins() -> None:
    result = allocate([LineRequest("A", 1)], {("A", "WH-1"): 3, ("A", "WH-2"): 9})
    assert result.picks == (Pick("A", "WH-2", 1),)


def test_split_across_warehouses_when_no_single_one_can_serve() -> None:
    result = allocate([LineRequest("A", 5)], {("A", "WH-1"): 3, ("A", "WH-2"): 4})
    assert result.complete
    assert result.picks == (Pick("A", "WH-2", 4), Pick("A", "WH-1", 1))


def test_nothing_is_allocated_when_a_line_falls_short_everywhere() -> None:
    result = allocate(
        [LineRequest("A", 1), LineRequest("B", 5)], {("A", "WH-1"): 3, ("B", "WH-1"): 2, ("B", "WH-2"): 2}
    )
    assert not result.complete
    assert result.picks == ()
    assert result.shortfalls == (Shortfall("B", 5, 4),)


def test_repeated_skus_are_merged_and_negative_availability_counts_as_none() -> None:
    result = allocate([LineRequest("A", 1), LineRequest("A", 2)], {("A", "WH-1"): 3, ("A", "WH-2"): -2})
    assert result.picks == (Pick("A", "WH-1", 3),)
    with pytest.raises(ValueError, match="positive"):
        allocate([LineRequest("A", 0)], {("A", "WH-1"): 3})
