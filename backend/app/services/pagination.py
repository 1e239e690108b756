"""One page of a query's results, with the number of rows the whole query matches.

Every paginated list of the API (`meta.page`, `meta.per_page`, `meta.total`, DESIGN.md)
goes through `paginate`, so pages are counted and sliced the same way everywhere.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def paginate(db: Session, stmt: Select[T], *, page: int, per_page: int) -> tuple[list[T], int]:
    """Page `page` (from 1) of `per_page` rows of `stmt`, in its order, and how many rows it matches in all.

    `stmt` selects one entity and carries its filters, order and loader options. The
    total counts the rows of `stmt` without its ORDER BY; a page past the end is empty.

    Raises:
        ValueError: page or per_page below 1.
    """
    if page < 1 or per_page < 1:
        raise ValueError("page and per_page start at 1")
    total = db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = db.scalars(stmt.limit(per_page).offset((page - 1) * per_page))
    return list(items), total
