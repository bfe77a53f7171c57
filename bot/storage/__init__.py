"""Persistence: SQLAlchemy 2 models, the async engine, and repositories.

SQLite by default (a file in ``var/``), PostgreSQL through ``DATABASE_URL``; the schema is owned
by Alembic migrations in ``alembic/``.
"""
