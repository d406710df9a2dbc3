"""The store: SQLModel tables, engine and sessions, repositories, migrations."""
