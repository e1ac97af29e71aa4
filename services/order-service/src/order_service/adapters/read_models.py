"""Every read model order-service keeps of its order streams: what the repository writes with each
append (`order_summaries` in its own statement, then the others) and what a projection rebuild empties
and replays."""

from dataclasses import dataclass

from order_service.adapters.projection import OrderProjection, Projections
from order_service.adapters.sales_projection import SalesProjection


@dataclass(frozen=True)
class ReadModels:
    summaries: OrderProjection
    others: Projections


def read_models() -> ReadModels:
    return ReadModels(OrderProjection(), Projections(SalesProjection()))
