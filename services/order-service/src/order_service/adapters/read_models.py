"""Every read model order-service keeps of its order streams, in the order they are written: what the
repository applies with each append and what a projection rebuild empties and replays."""

from order_service.adapters.projection import OrderProjection, Projections
from order_service.adapters.sales_projection import SalesProjection


def read_models() -> Projections:
    # order_summaries first: a rebuild holds writers off at its lock (see Projections).
    return Projections(OrderProjection(), SalesProjection())
