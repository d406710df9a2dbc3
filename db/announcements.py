"""Record events that leave the store only once the transaction that made them commits.

An action announces a change on the session that makes it (``announce``); the
announcement is rendered just before the commit, published just after it by the
publisher the application installed (``set_publisher``: actions/record_events.py sends
Prefect events), and dropped if the transaction rolls back. So no event tells of a change
that did not happen, and none waits on the gateway or on Prefect.

Each event's id is derived from what it tells (name, record, and a discriminator such as
a refund's revision), so telling it again after a crash or a retried run carries the same
id, which Prefect's event store and its automations treat as the same event.

The store knows nothing of Prefect: this module only keeps the announcements and calls
the publisher.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession

logger = logging.getLogger(__name__)

EVENT_NAMESPACE = uuid.UUID("6f0c2a8e-5d0b-4f7e-9a55-0d1f3b6c7e21")
_ANNOUNCED = "om.announced"  # Session.info key: announcements not yet rendered
_READY = "om.ready"  # rendered at before_commit, published at after_commit


@dataclass(frozen=True)
class RecordEvent:
    """One event about one record: ``om.<record>.<verb>``, the record as the resource.

    ``related`` maps each role (order-summary, credit-memo, invoice, ...) to the ids of
    the records in it; ``payload`` carries amounts and ids as exact strings; ``labels``
    are extra resource labels (``om.source``) an automation's trigger can match on.
    """

    record: str
    verb: str
    record_id: str
    related: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    payload: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    discriminator: str = ""

    @property
    def name(self) -> str:
        return f"om.{self.record}.{self.verb}"

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(EVENT_NAMESPACE, f"{self.name}|{self.record_id}|{self.discriminator}")


Publisher = Callable[[RecordEvent], None]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    """Install the function that sends committed events (None: events are dropped)."""
    global _publisher
    _publisher = publisher


def announce(session: OrmSession, render: Callable[[], RecordEvent | None]) -> None:
    """Publish the event ``render`` makes once this session's transaction commits.

    ``render`` runs just before the commit, so the event carries the record's final
    values (a total summed after its lines were added); it may return None to announce
    nothing after all.
    """
    session.info.setdefault(_ANNOUNCED, []).append(render)


def publish_now(event: RecordEvent) -> None:
    """Publish an event about a change already committed (telling it again on a resume)."""
    if _publisher is None:
        return
    try:
        _publisher(event)
    except Exception:  # noqa: BLE001 - the change is committed; a lost event must not fail it
        logger.exception("could not publish %s for %s", event.name, event.record_id)


@sa_event.listens_for(OrmSession, "before_commit")
def _render_announcements(session: OrmSession) -> None:
    renders = session.info.pop(_ANNOUNCED, None)
    if not renders:
        return
    ready = session.info.setdefault(_READY, [])
    for render in renders:
        try:
            event = render()
        except Exception:  # noqa: BLE001 - telling of a change must never undo it (a gateway answer)
            logger.exception("could not render an event; the change commits without it")
            continue
        if event is not None:
            ready.append(event)


@sa_event.listens_for(OrmSession, "after_commit")
def _publish_committed(session: OrmSession) -> None:
    for event in session.info.pop(_READY, ()):
        publish_now(event)


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _drop_untold(session: OrmSession, transaction) -> None:
    # After a commit (which published them) this finds nothing; after a rollback, or a
    # close without commit, the announcements of changes that did not happen go.
    if transaction.parent is None:
        session.info.pop(_ANNOUNCED, None)
        session.info.pop(_READY, None)
