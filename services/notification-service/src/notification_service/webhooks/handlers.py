"""The webhook consumer (group `notification-service-webhooks`, every events topic): a delivery row per
(subscription, event) in the consuming transaction, beside its inbox row; the sender is woken after the
commit. So an event is queued for every subscriber exactly once (inbox, and the (subscription, event)
unique key), and nothing is sent for a transaction that rolled back.

Most records concern no subscriber. `SubscribedHandlers` is a handler map whose `get` answers only for
the types some subscription asks for (`WantedTypes`: read from the database at start, after every change
through this replica's API and every WEBHOOK_SUBSCRIPTION_REFRESH_S for the changes other replicas made),
so the runtime skips every other record by its `type` header before parsing it, as it does any type a
consumer does not handle. With no subscriptions a record costs a header lookup. `message_types` stays
every subscribable type (what the contract's routes and the manifests' ACLs say the group may read).

A subscription gets the events that occurred after it was made (the consumer group may read older
records, e.g. when it starts for the first time at the topics' beginning).
"""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from notification_service.webhooks.repository import WebhookRepository
from oms_events.cloudevents import structured_json, subject_of
from oms_events.messages import MESSAGE_TYPES, ContractMessage
from oms_events.routes import WEBHOOK_EVENT_TYPES
from oms_runtime.db import Database
from oms_runtime.logging import get_logger
from oms_runtime.messaging import Handler, HandlerMap, MessageContext

log = get_logger(__name__)

Clock = Callable[[], datetime]

_WOKEN = "notification_service.webhooks.woken"


class WantedTypes:
    """The event types at least one subscription asks for (this replica's view)."""

    def __init__(self, db: Database, repository: WebhookRepository) -> None:
        self._db = db
        self._repository = repository
        self._types: frozenset[str] = frozenset()

    def __call__(self, message_type: str) -> bool:
        return message_type in self._types

    def any(self) -> bool:
        return bool(self._types)

    def replace(self, types: frozenset[str]) -> None:
        self._types = types

    async def refresh(self) -> None:
        async with self._db.transaction() as session:
            self._types = await self._repository.wanted_types(session)


class SubscribedHandlers(HandlerMap):
    """Every subscribable type registered; only the subscribed ones handled."""

    def __init__(self, wanted: WantedTypes) -> None:
        super().__init__()
        self._wanted = wanted

    def get(self, message_type: str) -> Handler | None:
        return super().get(message_type) if self._wanted(message_type) else None


class WebhookHandlers:
    def __init__(self, repository: WebhookRepository, *, clock: Clock, wake: Callable[[], None]) -> None:
        self._repository = repository
        self._clock = clock
        self._wake = wake

    def handler_map(self, wanted: WantedTypes) -> HandlerMap:
        handlers = SubscribedHandlers(wanted)
        for cls in MESSAGE_TYPES:
            if cls.message_type in WEBHOOK_EVENT_TYPES:
                handlers.register(cls, self.queue)
        return handlers

    async def queue(self, ctx: MessageContext, _: ContractMessage) -> None:
        envelope = ctx.envelope
        if envelope is None:
            raise RuntimeError("webhooks are queued only for consumed events")
        queued = await self._repository.queue_event(
            ctx.session,
            event_id=envelope.event_id,
            event_type=envelope.type,
            subject=subject_of(envelope),
            occurred_at=envelope.occurred_at,
            body=structured_json(envelope),
            now=self._clock(),
        )
        if queued:
            log.info("webhook deliveries queued", deliveries=queued)
            sync = ctx.session.sync_session
            if not sync.info.get(_WOKEN):
                sync.info[_WOKEN] = True
                wake = self._wake

                def committed(_: Session) -> None:
                    wake()

                orm_event.listen(sync, "after_commit", committed, once=True)
