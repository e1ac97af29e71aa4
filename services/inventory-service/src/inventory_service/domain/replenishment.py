"""Replenishment policies and the reorder decision. Pure: no I/O.

A policy belongs to one sku in one warehouse: a reorder point, plus either a fixed reorder quantity
(order Q units every time) or an order-up-to level (order what brings available stock up to S), and
the supplier's lead time. When available stock falls to or below the reorder point and no purchase
order is open for that sku and warehouse, one purchase order is raised.
"""

from dataclasses import dataclass
from datetime import date, timedelta


class PolicyError(ValueError):
    """A policy that cannot work; says which field is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ReplenishmentPolicy:
    sku: str
    warehouse_id: str
    reorder_point: int
    reorder_quantity: int | None
    order_up_to: int | None
    lead_time_days: int

    def __post_init__(self) -> None:
        if self.reorder_point < 0:
            raise PolicyError("reorder_point", "must not be negative")
        if self.lead_time_days < 0:
            raise PolicyError("lead_time_days", "must not be negative")
        if (self.reorder_quantity is None) == (self.order_up_to is None):
            raise PolicyError("reorder_quantity", "give exactly one of reorder_quantity and order_up_to")
        if self.reorder_quantity is not None and self.reorder_quantity <= 0:
            raise PolicyError("reorder_quantity", "must be positive")
        if self.order_up_to is not None and self.order_up_to <= self.reorder_point:
            raise PolicyError("order_up_to", "must be above the reorder point")

    def needs_order(self, available: int) -> bool:
        return available <= self.reorder_point

    def order_quantity(self, available: int) -> int:
        """Units to order when `available` is at or below the reorder point (and nothing is on order)."""
        if self.reorder_quantity is not None:
            return self.reorder_quantity
        assert self.order_up_to is not None
        return self.order_up_to - available

    def expected_by(self, today: date) -> date:
        return today + timedelta(days=self.lead_time_days)
