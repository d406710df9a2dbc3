"""Pure business logic: money, statuses, the refund allocation algorithm, errors.

Nothing here imports Prefect, SQLModel, FastAPI or any other package of this project.
"""
