"""The warm executor: operations as flow runs of deployed flows, run in a long-lived process."""

from runtime.executor.core import ExecutorSettings, WarmExecutor

__all__ = ["ExecutorSettings", "WarmExecutor"]
