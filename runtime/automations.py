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
        existing = {automation.name for automation in client.read_automations()}
        for deployment_name, triggers in shipped_triggers().items():
            if deployment_name not in deployment_ids:
                continue
            for spec in triggers:
                if spec["name"] in existing:
                    continue
                trigger = DeploymentEventTrigger(**{**spec, "enabled": enabled})
                trigger.set_deployment_id(deployment_ids[deployment_name])
                automation = trigger.as_automation().model_copy(update={"owner_resource": None})
                client.create_automation(automation)
                created.append(spec["name"])
    return created
