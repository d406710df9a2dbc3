"""Serve every flow in ``flows/`` as a deployment named ``<flow-name>/<flow-name>``.

    PREFECT_API_URL=... OM_DATABASE_URL=... python -m runtime.serve

The embedded counterpart of ``prefect.yaml`` (same deployment names, tags, schedule), run
by ``prefect.serve``: one process polls the server and runs each flow run in a subprocess.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

# What this process serves; checked against the flows found in flows/ at start.
DEPLOYMENTS: tuple[str, ...] = (
    "ensure-funds-async/ensure-funds-async",
    "ensure-refunds-async/ensure-refunds-async",
    "audit-ledger/audit-ledger",
    "submit-cancel/submit-cancel",
    "submit-return/submit-return",
    "create-credit-memo/create-credit-memo",
    "create-invoice-from-change-orders/create-invoice-from-change-orders",
    "create-return-order/create-return-order",
    "return-return-order-items/return-return-order-items",
    "fulfil-items/fulfil-items",
    "run-composition/run-composition",
    "refund-payment/refund-payment",
    "send-payment-refund/send-payment-refund",
    "record-refund-reversal/record-refund-reversal",
    "deliver-webhooks/deliver-webhooks",
    "export-refunds/export-refunds",
    "resolve-gateway-outcomes/resolve-gateway-outcomes",
    "sweep-credit-memos/sweep-credit-memos",
    "reconcile-gateway/reconcile-gateway",
)

CORE_ACTIONS: tuple[str, ...] = (
    "submit-cancel", "submit-return", "create-credit-memo", "create-invoice-from-change-orders", "create-return-order",
    "return-return-order-items", "fulfil-items",
)
"""Flow Builder's core actions that are deployments of their own with enforced parameters."""

VERSION = "0.1.0"
CONCURRENCY = int(os.environ.get("OM_SERVE_CONCURRENCY", "8"))  # concurrent ensure-refunds runs
AUDIT_CRON = os.environ.get("OM_AUDIT_CRON", "*/15 * * * *")  # empty: no schedule
RESOLVE_CRON = os.environ.get("OM_RESOLVE_CRON", "*/10 * * * *")  # empty: no schedule
WEBHOOK_CRON = os.environ.get("OM_WEBHOOK_CRON", "* * * * *")  # empty: no schedule
EXPORT_CRON = os.environ.get("OM_EXPORT_CRON", "*/5 * * * *")  # empty: no schedule
SWEEP_CRON = os.environ.get("OM_SWEEP_CRON", "30 * * * *")  # empty: no schedule
RECONCILE_CRON = os.environ.get("OM_RECONCILE_CRON", "15 2 * * *")  # daily; empty: no schedule

# Per-deployment options beyond the defaults (mirrors prefect.yaml).
OPTIONS: dict[str, dict] = {
    # Every action enforces its parameter schema (money as JSON numbers: actions/fields.py).
    "ensure-refunds-async": {"tags": ["order-management", "refunds"], "concurrency_limit": CONCURRENCY,
                             "enforce_parameter_schema": True},
    # Flow Builder's core actions (issue 12): the server checks their parameters against
    # the form's schema, so bad input makes no run.
    **{name: {"tags": ["order-management", "core-action"], "concurrency_limit": CONCURRENCY,
              "enforce_parameter_schema": True}
       for name in CORE_ACTIONS},
    # Compositions (issue 13): the run checks the composition and its inputs itself, whose
    # shape only the composition knows.
    "run-composition": {"tags": ["order-management", "composition"], "concurrency_limit": CONCURRENCY,
                        "enforce_parameter_schema": True},
    "refund-payment": {"tags": ["payments", "refunds"], "concurrency_limit": CONCURRENCY, "enforce_parameter_schema": True},
    "send-payment-refund": {"tags": ["payments", "refunds"], "concurrency_limit": CONCURRENCY},
    "record-refund-reversal": {"tags": ["payments", "refunds"], "concurrency_limit": CONCURRENCY},
    "ensure-funds-async": {"tags": ["order-management", "funds"], "concurrency_limit": CONCURRENCY,
                           "enforce_parameter_schema": True},
    "deliver-webhooks": {"tags": ["payments", "webhooks"], "concurrency_limit": 1,
                         **({"cron": WEBHOOK_CRON} if WEBHOOK_CRON else {})},
    "export-refunds": {"tags": ["payments", "accounting"], "concurrency_limit": 1,
                       **({"cron": EXPORT_CRON} if EXPORT_CRON else {})},
    "audit-ledger": {
        "tags": ["order-management", "reconciliation"],
        "concurrency_limit": 1,
        **({"cron": AUDIT_CRON} if AUDIT_CRON else {}),
    },
    "sweep-credit-memos": {"tags": ["order-management", "refunds", "reconciliation"], "concurrency_limit": 1,
                           **({"cron": SWEEP_CRON} if SWEEP_CRON else {})},
    "reconcile-gateway": {"tags": ["order-management", "reconciliation"], "concurrency_limit": 1,
                          **({"cron": RECONCILE_CRON} if RECONCILE_CRON else {})},
    "resolve-gateway-outcomes": {
        "tags": ["order-management", "reconciliation"],
        "concurrency_limit": 1,
        **({"cron": RESOLVE_CRON} if RESOLVE_CRON else {}),
    },
}


def _flows_of(module) -> dict:
    from prefect import Flow

    return {value.name: value for value in vars(module).values()
            if isinstance(value, Flow) and value.fn.__module__ == module.__name__}


def load_flows(module_name: str | None = None) -> list:
    """Every ``prefect.Flow`` defined at module level in the ``flows`` package, or in
    ``module_name``."""
    import flows

    found = {}
    if module_name:
        found.update(_flows_of(importlib.import_module(module_name)))
    else:
        for module_info in pkgutil.iter_modules(flows.__path__, prefix="flows."):
            found.update(_flows_of(importlib.import_module(module_info.name)))
    return [found[name] for name in sorted(found)]


def served(*, deployment_name: str | None = None, module_name: str | None = None) -> list:
    """Each flow of flows/ (or of ``module_name``) with its deployment, not yet applied.

    Deployments are named ``<flow>/<flow>`` (what the facade starts), or
    ``<flow>/<deployment_name>`` for a separate set of the same flows (tests, rehearsals).
    """
    from prefect.deployments.runner import EntrypointType

    flows = load_flows(module_name)
    names = {f"{flow.name}/{flow.name}" for flow in flows}
    if module_name is None and names != set(DEPLOYMENTS):
        raise RuntimeError(f"runtime.serve.DEPLOYMENTS {sorted(DEPLOYMENTS)} != flows found in flows/ {sorted(names)}")
    return [
        (flow, flow.to_deployment(
            name=deployment_name or flow.name,
            version=VERSION,
            entrypoint_type=EntrypointType.MODULE_PATH,  # importable from PYTHONPATH, whatever the cwd
            **({} if deployment_name else OPTIONS.get(flow.name, {})),
        ))
        for flow in flows
    ]


def deployments() -> list:
    return [deployment for _flow, deployment in served()]


def main() -> None:
    from prefect import serve

    to_serve = deployments()
    limit = sum(d.concurrency_limit or CONCURRENCY for d in to_serve)
    # pause_on_shutdown=False: a Ctrl-C must not leave the audit schedule paused for the next start.
    serve(*to_serve, limit=limit, pause_on_shutdown=False, print_starting_message=False)


if __name__ == "__main__":
    main()
