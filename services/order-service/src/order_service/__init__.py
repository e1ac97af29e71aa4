"""order-service: the order aggregate, intake, the order saga and order queries."""
