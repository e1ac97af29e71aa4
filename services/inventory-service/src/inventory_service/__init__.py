"""inventory-service: warehouses, stock per sku per warehouse, and atomic reservations."""
