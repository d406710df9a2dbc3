"""Committed record changes as Prefect events (``om.<record>.<verb>``), for automations.

Importing this module installs the publisher of db/announcements.py: every event an
action announced on its session is emitted once that transaction commits. Inside a flow
run Prefect relates the flow run, flow and deployment itself; the event's own related
resources carry the records by role (order-summary, credit-memo, invoice, ...).
"""

from __future__ import annotations

from prefect.events import emit_event
from prefect.settings import get_current_settings

from db.announcements import RecordEvent, publish_now, set_publisher


def resource_id(role: str, record_id: str) -> str:
    """The Prefect resource id of a record: ``om.<role>.<id>``, e.g. ``om.credit-memo.50g...``."""
    return f"om.{role}.{record_id}"


def emit_record_event(event: RecordEvent) -> None:
    """Send one record event to Prefect, with its deterministic id (nothing without an API
    URL: Prefect would otherwise start a server of its own to receive it)."""
    if not get_current_settings().api.url:
        return
    payload = {key: value for key, value in event.payload.items() if value is not None}
    emit_event(
        event=event.name,
        id=event.id,
        resource={
            "prefect.resource.id": resource_id(event.record, event.record_id),
            "prefect.resource.name": event.record_id,
            **event.labels,
        },
        related=[
            {"prefect.resource.id": resource_id(role, record_id), "prefect.resource.role": role,
             "prefect.resource.name": record_id}
            for role, record_ids in event.related.items() for record_id in record_ids
        ],
        payload=payload,
    )


def tell_again(event: RecordEvent) -> None:
    """Emit the event of a change committed earlier (a resumed run that found its records).

    Same id as the first telling, so Prefect stores and triggers on it once; it covers a
    process that died between the commit and the event leaving.
    """
    publish_now(event)


set_publisher(emit_record_event)
