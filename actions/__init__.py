"""Order Management actions: one module per action, each an ``<Action>Input``, an
``<Action>Output`` and one Prefect ``@task``.

The tasks never persist their results (``persist_result=False``), although the action
flows persist theirs: a persisted task result would be a cache that answers a resumed
flow run without running the task, where each task is instead idempotent by operation id
and must look at the store (and the gateway) again."""

from actions import record_events as _record_events  # noqa: F401 - installs the event publisher
