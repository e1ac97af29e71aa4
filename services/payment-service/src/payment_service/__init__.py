"""payment-service: captures an order's payment through a gateway port, once per order, and refunds it."""
