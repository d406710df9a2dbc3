"""The engine's own records: idempotent REST answers, executors' liveness and claims, and
composition runs with their steps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from db.models.shapes import _created_column


# --- the REST facade's idempotency keys for synchronous actions -------------------------


class IdempotentRequest(SQLModel, table=True):
    """A synchronous action's answer under an Idempotency-Key, written in the action's own
    transaction: a retry replays it, a different request under the key is refused."""

    __tablename__ = "idempotent_request"
    key: str = Field(primary_key=True, max_length=400, description="The caller's scope and the key it sent.")
    fingerprint: str = Field(max_length=64, description="SHA-256 of the method, path and canonical body.")
    status_code: int
    response_body: str = Field(sa_column=Column(Text, nullable=False))
    created_date: datetime = _created_column()


class ExecutorHeartbeat(SQLModel, table=True):
    """A warm executor's liveness: written every second with the flow runs it holds, so any
    executor can tell a dead one's runs (held by nobody alive) and mark them Crashed."""

    __tablename__ = "executor_heartbeat"
    executor_id: str = Field(primary_key=True, max_length=100, description="host:pid:random, unique per process.")
    work_pool: str = Field(max_length=255, description="The Prefect work pool it executes.")
    started_at: datetime = _created_column()
    beat_at: datetime = _created_column()
    run_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"),
                         description="JSON list of the flow run ids it holds.")


class ExecutorClaim(SQLModel, table=True):
    """Who took a flow run out of one particular Scheduled state. The first insert wins, so
    an executor acting on a stale read (the run was since claimed, run and finished) can
    never claim it again: Prefect itself accepts PENDING after a final state when results
    are not persisted."""

    __tablename__ = "executor_claim"
    flow_run_id: str = Field(primary_key=True, max_length=36)
    scheduled_state_id: str = Field(primary_key=True, max_length=36)
    executor_id: str = Field(max_length=100)
    claimed_at: datetime = _created_column()


class OperationStep(SQLModel, table=True):
    """One step of a composition run (issue 13). A step runs its action under an operation
    id of its own, derived from the run's and the step's (compositions.run), so two steps
    of one run never share records; this row leads back from that id to the run carrying
    it, for the resolvers (is the operation still running?) and for a person reading what
    an operation changed."""

    __tablename__ = "operation_step"
    id: str = Field(primary_key=True, max_length=36, description="The step's operation id (a uuid5).")
    operation_id: str = Field(max_length=36, index=True, description="The composition run's flow run id.")
    composition: str = Field(max_length=63)
    step: str = Field(max_length=80, description="The step id, with [n] for a Loop's n-th element.")
    action: str = Field(max_length=63)
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True),
                               description="The action's output (JSON) once it returned: a resumed run reads it back.")
    created_date: datetime = _created_column()


class CompositionRun(SQLModel, table=True):
    """The composition a run started with (issue 13): a resumed run runs that one, not one
    an operator has edited since, so its steps' operation ids mean what they meant."""

    __tablename__ = "composition_run"
    operation_id: str = Field(primary_key=True, max_length=36, description="The run's flow run id.")
    composition: str = Field(max_length=63)
    definition: str = Field(sa_column=Column(Text, nullable=False), description="The composition as JSON.")
    created_date: datetime = _created_column()
