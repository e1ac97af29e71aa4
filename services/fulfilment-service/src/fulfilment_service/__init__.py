"""fulfilment-service: ships an order's allocations, one shipment per warehouse, with carrier tracking."""
