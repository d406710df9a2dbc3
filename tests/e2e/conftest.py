"""The engine as a user runs it: served deployments and the REST facade over TLS,
on the session's Prefect server, with the store on each backend."""

from __future__ import annotations

import secrets

import pytest
import requests
import trustme
from simple_salesforce import Salesforce

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from blocks import SandboxGateway

E2E_GATEWAY_BLOCK = "e2e-scripted-gateway"


def count_requested_runs() -> int:
    """Flow runs of the deployments that only a request starts (those without a schedule).

    Prefect's scheduler keeps adding runs of the scheduled deployments (deliver-webhooks
    every minute, ...) while a test runs, so a count of every run is not a count of what
    a request started.
    """
    with get_client(sync_client=True) as client:
        on_request = [d.id for d in client.read_deployments() if not d.schedules]
        return client.count_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=on_request)))


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


@pytest.fixture(scope="session")
def engine(prefect_api, store_url, tls, tmp_path_factory):
    """The stack of ``om-engine up`` minus what the session already runs (Prefect, store)."""
    from db.settings import get_store_settings
    from runtime.processes import free_port
    from runtime.stack import Stack, StackConfig

    ca_path, cert_path, key_path = tls
    stack = Stack(StackConfig(
        data_dir=tmp_path_factory.mktemp("engine"), api_port=free_port(), certfile=cert_path, keyfile=key_path,
        token=secrets.token_urlsafe(16), prefect_api_url=prefect_api, store_url=store_url,
        extra_tokens={"read-only-token": ["read"]},
    ))
    try:
        stack.start(log=lambda _msg: None)
        SandboxGateway(outcomes_by_amount={"13.13": "decline", "66.60": "timeout"}).save(E2E_GATEWAY_BLOCK, overwrite=True)
        yield stack
    finally:
        stack.stop()
        get_store_settings.cache_clear()


@pytest.fixture
def sf(engine, tls) -> Salesforce:
    """An unmodified simple-salesforce client pointed at the facade."""
    session = requests.Session()
    session.verify = str(tls[0])
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify
    return Salesforce(instance_url=engine.facade_url, session_id=engine.config.token, version="60.0", session=session)


@pytest.fixture
def automation(engine):
    """Create automations through Prefect's API as the UI's form does; deleted afterwards."""
    made = []

    def create(body: dict) -> str:
        with get_client(sync_client=True) as client:
            automation_id = client._client.post("/automations/", json=body).raise_for_status().json()["id"]
        made.append(automation_id)
        return automation_id

    yield create
    with get_client(sync_client=True) as client:
        for automation_id in made:
            client._client.delete(f"/automations/{automation_id}")
