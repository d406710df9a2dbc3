"""Order Management actions: one module per action, each an ``<Action>Input``, an
``<Action>Output`` and one Prefect ``@task``."""
