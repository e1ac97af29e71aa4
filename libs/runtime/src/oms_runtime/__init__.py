"""The shared service runtime of the OMS, written once and used by every service.

settings, logging, database, event store, outbox (+ relay), inbox, Kafka consumers with
dead-lettering, and the service host that wires them together.
"""
