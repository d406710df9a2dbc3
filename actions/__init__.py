"""Order Management actions: one module per action, each an ``<Action>Input``, an
``<Action>Output`` and one Prefect ``@task``."""

from actions import record_events as _record_events  # noqa: F401 - installs the event publisher
