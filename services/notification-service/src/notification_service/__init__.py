"""notification-service: emails to customers about their orders, each sent at most once per event."""
