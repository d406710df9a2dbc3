"""The record-triggered flows an admin builds first, shipped ready: the ``triggers:`` of
prefect.yaml, applied by ``om up`` as automations of their own.

``prefect deploy --all`` makes each trigger an automation *owned* by its deployment and
recreates it on every deploy (Prefect's way). The warm executor applies its deployments on
every start, and Prefect then deletes every automation the deployment owns, so ``om up``
creates these unowned instead, and only those whose name no automation has yet: an
operator's edits (a changed parameter, switched off in the UI) survive restarts and
re-deploys, and a deleted one comes back on the next ``om up``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import get_client
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def shipped_triggers(path: Path = PREFECT_YAML) -> dict[str, list[dict[str, Any]]]:
    """Each deployment's ``triggers:`` in prefect.yaml, by deployment name."""
    spec = yaml.safe_load(path.read_text())
    return {d["name"]: list(d["triggers"]) for d in spec["deployments"] if d.get("triggers")}


def apply_shipped_automations(deployment_ids: dict[str, UUID], *, enabled: bool) -> list[str]:
    """Create the shipped automations no automation is named like yet; returns their names.

    Args:
        deployment_ids: Deployment id by deployment name (the executor applied them).
        enabled: Whether the new automations start switched on (``om up --demo``) or off
            for an operator to switch on in the UI.

    Example:
        ```python
        from runtime.automations import apply_shipped_automations
        apply_shipped_automations({"ensure-refunds-async": deployment_id}, enabled=True)
        ```
    """
    created = []
    with get_client(sync_client=True) as client:
        for deployment_name, triggers in shipped_triggers().items():
            if deployment_name not in deployment_ids:
                continue
            for spec in triggers:
                if client.read_automations_by_name(spec["name"]):
                    continue
                trigger = DeploymentEventTrigger(**{**spec, "enabled": enabled})
                trigger.set_deployment_id(deployment_ids[deployment_name])
                automation = trigger.as_automation().model_copy(update={"owner_resource": None})
                client.create_automation(automation)
                created.append(spec["name"])
    return created


NOTIFICATION_BLOCK = "om-operations"
"""The notification block the ProcessException automation sends through (any Prefect
notification block of this name: Slack, Teams, a custom webhook, ...)."""

PROCESS_EXCEPTION_AUTOMATION = "notify-on-process-exceptions"

_PROCESS_EXCEPTION_BODY = (
    "{{ event.payload.message }}\n"
    "Severity: {{ event.payload.severity | default('') }}, category: {{ event.payload.category | default('') }}\n"
    "Order summary: {{ event.payload.orderSummaryId | default('') }}\n"
    "Attached to: {{ event.payload.attachedToId | default('') }}\n"
    "Process exception: {{ event.payload.processExceptionId }}"
)


def process_exception_automation(block_document_id: UUID, *, enabled: bool):
    """A ProcessException created (a refund or capture the gateway refused, a balance left
    to collect) -> a notification through the operations block."""
    from datetime import timedelta

    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=PROCESS_EXCEPTION_AUTOMATION, enabled=enabled,
        description="When a ProcessException is created, tell the operations team through the om-operations block.",
        trigger=EventTrigger(
            expect={"om.process-exception.created"}, match={"prefect.resource.id": "om.process-exception.*"},
            for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1, within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject="ProcessException {{ event.payload.processExceptionId }}: {{ event.payload.message }}",
            body=_PROCESS_EXCEPTION_BODY,
        )],
    )


def apply_notification_automation(*, enabled: bool, webhook_url: str | None = None) -> str | None:
    """Create the ProcessException automation if it is missing and a block can carry it.

    The block is the notification block named ``om-operations``; with ``webhook_url`` and
    no such block, a custom-webhook block of that name posting ``{"subject", "body"}`` to
    the URL is made. Returns the automation's name if it was created, else None.
    """
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(PROCESS_EXCEPTION_AUTOMATION):
            return None
        blocks = [b for b in client.read_block_documents(include_secrets=False) if b.name == NOTIFICATION_BLOCK]
        if blocks:
            block_document_id = blocks[0].id
        elif webhook_url:
            block_document_id = CustomWebhookNotificationBlock(
                name="OM operations", url=webhook_url, json_data={"subject": "{{subject}}", "body": "{{body}}"},
            ).save(NOTIFICATION_BLOCK)
        else:
            return None
        client.create_automation(process_exception_automation(block_document_id, enabled=enabled))
    return PROCESS_EXCEPTION_AUTOMATION
