"""prefect.yaml deploys with the Prefect CLI onto the session's real server, as documented
at its top (work pool, then ``prefect --no-prompt deploy --all`` from the project root).

runtime.serve creates deployments under the same names on the same server in other
tests, so this module deploys a copy of prefect.yaml whose deployment names carry
``-yaml-test`` and whose work pool is its own; the entrypoints stay the project's files
and the deploy runs with cwd=PROJECT_ROOT. No worker polls that pool, so the scheduled
audit runs stay SCHEDULED; the deployments are deleted at the end.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUFFIX = "-yaml-test"
POOL = "om-process-yaml-test"
ENSURE = "ensure-refunds-async"
AUDIT = "audit-ledger"
# Scheduled runs come from the server's "recent deployments" scheduler, which every
# PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS (default 5 s) schedules
# deployments updated within that interval + 1 s; the create-deployment request itself
# schedules nothing. Should that pass miss it (a loaded machine), the main scheduler
# (PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS, default 60 s) picks it up: hence 90 s.
SCHEDULED_RUNS_TIMEOUT = 90  # seconds after `prefect deploy` returned


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def _project_yaml() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())


def _yaml_names() -> list[str]:
    return [d["name"] for d in _project_yaml()["deployments"]]


@pytest.fixture(scope="module")
def deployed(prefect_api, tmp_path_factory):
    """Deploy the suffixed copy of prefect.yaml; yield {short name: deployment} and the deploy time."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from runtime.prefect_server import prefect_env

    config = copy.deepcopy(_project_yaml())
    for deployment in config["deployments"]:
        deployment["name"] += SUFFIX
        deployment["work_pool"]["name"] = POOL
    prefect_file = tmp_path_factory.mktemp("deploy") / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))

    env = prefect_env(prefect_api)
    created = _prefect(["work-pool", "create", POOL, "--type", "process"], env)
    assert created.returncode == 0 or "already exists" in created.stdout + created.stderr, (
        created.stdout + created.stderr)

    started = time.monotonic()
    result = _prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)], env)
    deploy_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    deployed_at = time.monotonic()

    # Every deployment in prefect.yaml (flow name == deployment name, checked below).
    with get_client(sync_client=True) as client:
        found = {
            name: client.read_deployment_by_name(f"{name}/{name}{SUFFIX}") for name in _yaml_names()
        }
    yield {"deployments": found, "deployed_at": deployed_at, "deploy_seconds": deploy_seconds,
           "output": result.stdout}

    with get_client(sync_client=True) as client:
        for deployment in found.values():
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(deployment.id)


def test_project_prefect_yaml_declares_the_served_deployments():
    """The copy differs only in names and pool: what is checked below is prefect.yaml's.
    Its header promises runtime.serve serves the same flows under the same names."""
    import importlib

    from runtime.serve import DEPLOYMENTS, OPTIONS

    config = _project_yaml()
    assert config["prefect-version"] == __import__("prefect").__version__
    by_name = {d["name"]: d for d in config["deployments"]}
    assert {ENSURE, AUDIT} <= set(by_name)
    assert {f"{name}/{name}" for name in by_name} == set(DEPLOYMENTS)
    for name, deployment in by_name.items():
        assert deployment["work_pool"]["name"] == "om-warm"
        module, _, function = deployment["entrypoint"].partition(":")
        assert (PROJECT_ROOT / module).is_file()
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), function)
        assert flow.name == name
        served = OPTIONS.get(name, {})
        assert sorted(deployment["tags"]) == sorted(served.get("tags", [])), name
        assert deployment.get("enforce_parameter_schema", True) == served.get("enforce_parameter_schema", True), name
        yaml_crons = [s["cron"] for s in deployment.get("schedules") or []]
        assert yaml_crons == ([served["cron"]] if "cron" in served else []), name


def test_deploy_all_creates_every_deployment(deployed):
    print(f"prefect deploy --all took {deployed['deploy_seconds']:.1f}s")
    deployments = deployed["deployments"]
    yaml_by_name = {d["name"]: d for d in _project_yaml()["deployments"]}
    for name, deployment in deployments.items():
        spec = yaml_by_name[name]
        assert deployment.name == f"{name}{SUFFIX}"
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.work_pool_name == POOL
        assert deployment.version == spec["version"]
        assert deployment.description == spec["description"]
        assert sorted(deployment.tags) == sorted(spec["tags"])
        # No pull steps in prefect.yaml: the CLI records the deploy's cwd, where the
        # entrypoint is found by a worker on this machine.
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]
        crons = [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules]
        assert crons == [(s["cron"], s["timezone"], s["active"]) for s in spec.get("schedules") or []]
        limit = deployment.global_concurrency_limit
        assert (limit.limit if limit else None) == spec.get("concurrency_limit")


def test_ensure_refunds_deployment(deployed):
    from prefect.utilities.callables import parameter_schema

    from flows.ensure_refunds_async import ensure_refunds_async

    deployment = deployed["deployments"][ENSURE]
    assert deployment.enforce_parameter_schema is True
    assert deployment.schedules == []
    assert deployment.global_concurrency_limit is not None
    assert deployment.global_concurrency_limit.limit == 8
    # The form the UI shows is the flow's own schema (checked in test_parameter_schemas.py).
    assert deployment.parameter_openapi_schema == parameter_schema(ensure_refunds_async.fn).model_dump_for_openapi()
    assert deployment.parameters == {}


def test_audit_deployment_has_its_cron_schedule(deployed):
    deployment = deployed["deployments"][AUDIT]
    assert len(deployment.schedules) == 1
    schedule = deployment.schedules[0]
    assert schedule.active is True
    assert schedule.schedule.cron == "*/15 * * * *"
    assert schedule.schedule.timezone == "UTC"
    assert deployment.paused is False
    assert deployment.parameter_openapi_schema["properties"] == {}


def test_scheduler_creates_scheduled_audit_runs(deployed):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deployment = deployed["deployments"][AUDIT]
    runs_filter = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
    )
    runs = []
    with get_client(sync_client=True) as client:
        while time.monotonic() - deployed["deployed_at"] < SCHEDULED_RUNS_TIMEOUT:
            runs = client.read_flow_runs(flow_run_filter=runs_filter)
            if runs:
                break
            time.sleep(0.5)
        waited = time.monotonic() - deployed["deployed_at"]
        assert runs, f"no scheduled runs for {deployment.name} within {SCHEDULED_RUNS_TIMEOUT}s"
        lag = (min(run.created for run in runs) - deployment.created).total_seconds()
        print(f"{len(runs)} scheduled audit runs {waited:.1f}s after `prefect deploy` returned, "
              f"created {lag:.1f}s after the deployment")

        starts = sorted(run.expected_start_time for run in runs)
        assert len(starts) >= 3  # PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS (default 3)
        for start in starts:
            assert start.minute % 15 == 0 and start.second == 0 and start.microsecond == 0, start
        assert all(run.work_pool_name == POOL for run in runs)
        assert all(run.auto_scheduled for run in runs)


def test_the_shipped_triggers_become_automations_that_start_their_deployment(deployed, prefect_api, tmp_path):
    """prefect.yaml's triggers: owned by their deployment, recreated (not doubled) by a
    second deploy, and an ``om.credit-memo.created`` starts ensure-refunds-async with its
    parameters templated from the event, typed as the form expects."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from prefect.events import emit_event
    from runtime.prefect_server import prefect_env

    ensure = deployed["deployments"][ENSURE]

    def owned() -> list:
        with get_client(sync_client=True) as client:
            return [a for a in client.read_automations()
                    if any(getattr(action, "deployment_id", None) == ensure.id for action in a.actions)]

    assert [a.name for a in owned()] == ["refund-new-credit-memos"]
    config = copy.deepcopy(_project_yaml())
    config["deployments"] = [d for d in config["deployments"] if d["name"] == ENSURE]
    config["deployments"][0].update(name=ENSURE + SUFFIX, work_pool={"name": POOL})
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    again = _prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")],
                     prefect_env(prefect_api))
    assert again.returncode == 0, again.stdout + again.stderr
    [automation] = owned()
    assert automation.enabled and automation.trigger.expect == {"om.credit-memo.created"}

    order, memo = "1OsTRIGGER00000001", "50gTRIGGER00000001"
    # as a run of the create-credit-memo deployment tells it (Prefect relates the deployment)
    emit_event(event="om.credit-memo.created", resource={"prefect.resource.id": f"om.credit-memo.{memo}"},
               related=[{"prefect.resource.id": f"om.order-summary.{order}", "prefect.resource.role": "order-summary"},
                        {"prefect.resource.id": f"prefect.deployment.{uuid.uuid4()}", "prefect.resource.role": "deployment",
                         "prefect.resource.name": "create-credit-memo"}],
               payload={"creditMemoId": memo, "orderSummaryId": order, "totalAmount": "22.00", "currencyIsoCode": "USD"})
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[ensure.id])))
            started = [r for r in runs if r.parameters.get("order_summary_id") == order]
            if started:
                break
            time.sleep(0.5)
    assert [r.parameters for r in started] == [{"order_summary_id": order, "ensure_refunds_input": {"creditMemoId": memo}}]
