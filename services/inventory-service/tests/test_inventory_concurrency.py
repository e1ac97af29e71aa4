"""Many orders at once for scarce stock, on the real PostgreSQL: nothing is oversold, and at every moment
reserved + available == on hand and no level is negative (sampled while the orders run, and in every
StockLevelChanged event)."""

import asyncio
import random
from uuid import UUID, uuid4

from inventory_kit import BERLIN, LONDON, REGISTRY, Kit, inventory_kit, reserve
from sqlalchemy import func, select

from inventory_service.adapters.tables import reservation_lines, reservations, stock_levels
from oms_events.messages import ReleaseStock, StockLevelChanged, StockReservationFailed, StockReserved
from oms_runtime.testing import HandlerHarness

ORDERS = 60
WORKERS = 8
STOCK = {("A", "WH-BER"): 7, ("A", "WH-LON"): 5, ("B", "WH-BER"): 4, ("B", "WH-LON"): 6}


async def _sample(kit: Kit, stop: asyncio.Event, problems: list[str]) -> int:
    samples = 0
    while not stop.is_set():
        async with kit.db.transaction() as session:
            rows = (await session.execute(select(stock_levels))).mappings().all()
        for row in rows:
            available = row["on_hand"] - row["reserved"]
            if min(row["on_hand"], row["reserved"], available) < 0 or row["reserved"] + available != row["on_hand"]:
                problems.append(f"bad level {dict(row)}")
        samples += 1
        await asyncio.sleep(0.005)
    return samples


async def test_parallel_orders_for_scarce_stock_never_oversell() -> None:
    async with inventory_kit(pool_size=WORKERS + 2) as kit:
        for sku in ("A", "B"):
            await kit.stock(sku, {wh: qty for (s, wh), qty in STOCK.items() if s == sku}, (BERLIN, LONDON))
        rng = random.Random(7)
        orders = [
            (uuid4(), [(sku, rng.randint(1, 3)) for sku in rng.sample(["A", "B"], rng.randint(1, 2))])
            for _ in range(ORDERS)
        ]
        queue: asyncio.Queue[tuple[UUID, list[tuple[str, int]]]] = asyncio.Queue()
        for order in orders:
            queue.put_nowait(order)

        async def worker() -> None:
            # A processor of its own per worker, like consumers of several partitions or replicas.
            harness = HandlerHarness(kit.db, "inventory-service", kit.handlers.handler_map(), REGISTRY)
            while not queue.empty():
                order_id, lines = queue.get_nowait()
                await harness.send(reserve(order_id, *lines))
                if rng.random() < 0.3:  # some are released again (payment declined), in parallel with the rest
                    await harness.send(ReleaseStock(order_id=order_id, reason="payment declined"))

        stop, problems = asyncio.Event(), list[str]()
        sampler = asyncio.create_task(_sample(kit, stop, problems))
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        stop.set()
        samples = await sampler

        assert problems == []
        assert samples > 1
        assert kit.harness.dead_letters.sent == []

        outcomes = {type(m) for order_id, _ in orders for m in await kit.answers(order_id)}
        # The stock was scarce: some orders got it, some did not.
        assert StockReserved in outcomes
        assert StockReservationFailed in outcomes

        async with kit.db.transaction() as session:
            levels = {
                (r["sku"], r["warehouse_id"]): r for r in (await session.execute(select(stock_levels))).mappings()
            }
            live = await session.execute(
                select(
                    reservation_lines.c.sku, reservation_lines.c.warehouse_id, func.sum(reservation_lines.c.quantity)
                )
                .join(reservations, reservations.c.reservation_id == reservation_lines.c.reservation_id)
                .where(reservations.c.status == "reserved")
                .group_by(reservation_lines.c.sku, reservation_lines.c.warehouse_id)
            )
            held = {(sku, wh): int(quantity) for sku, wh, quantity in live.all()}
        for key, row in levels.items():
            assert row["on_hand"] == STOCK[key]  # nothing shipped: on hand untouched
            assert row["reserved"] == held.get(key, 0), key  # reserved is exactly what live reservations hold

        # Every level ever published was consistent, and the events of one sku + warehouse are numbered
        # without gaps, so a reader can tell it missed none.
        changes = [m for m in await kit.all_sent() if isinstance(m, StockLevelChanged)]
        assert changes
        by_level: dict[tuple[str, str], list[int]] = {}
        for change in changes:
            assert change.reserved + change.available == change.on_hand
            assert min(change.on_hand, change.reserved, change.available) >= 0
            by_level.setdefault((change.sku, change.warehouse_id), []).append(change.sequence)
        for sequences in by_level.values():
            assert sequences == list(range(1, len(sequences) + 1))
