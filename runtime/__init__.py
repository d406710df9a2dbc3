"""Process management shared by the CLI and the test suite: the embedded PostgreSQL,
a local Prefect server, and the process serving the deployments (DESIGN.md §9)."""
