"""A `WITH ... SELECT` statement built clause by clause, each clause with its own parameters.

The append is one statement of several CTEs whose presence depends on what is recorded;
keeping each clause's SQL and its parameters together means they can never go out of order.
"""

from collections.abc import Sequence
from typing import Any


class Statement:
    def __init__(self) -> None:
        self._clauses: list[str] = []
        self.params: list[Any] = []

    def clause(self, name: str, sql: str, params: Sequence[Any] = ()) -> None:
        """Add `name AS (sql)`; `params` are the placeholders of `sql`, in order."""
        self._clauses.append(f"{name} AS ({sql})")
        self.params.extend(params)

    def select(self, sql: str, params: Sequence[Any] = ()) -> str:
        """The whole statement, ending with `SELECT sql`; adds `params` after the clauses'."""
        self.params.extend(params)
        return "WITH " + ", ".join(self._clauses) + " SELECT " + sql
