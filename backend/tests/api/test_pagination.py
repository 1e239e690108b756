"""Every paginated list bounds `page` and `per_page` (schemas.common.PageIn): beyond them, a 422
envelope naming the field, not an OFFSET the database cannot hold (issue 12, finding 7)."""

from __future__ import annotations

import pytest

from app.schemas.common import MAX_PAGE, MAX_PER_PAGE
from tests import factories

ORGANIZATION_LISTS = ["members", "invitations", "clients", "audit-events"]


@pytest.fixture
def list_paths(org) -> list[str]:
    return ["/api/v1/clients", *(f"/api/v1/organizations/{org.id}/{name}" for name in ORGANIZATION_LISTS)]


@pytest.fixture
def operator_token(org) -> str:
    """A platform administrator: every list answers them."""
    operator = factories.UserFactory(is_platform_admin=True)
    return factories.session_token(operator)


@pytest.mark.parametrize("query, field", [
    ("page=9223372036854775807", "page"),
    (f"page={MAX_PAGE + 1}", "page"),
    (f"per_page={MAX_PER_PAGE + 1}", "per_page"),
    ("page=" + "9" * 5000, "page"),
], ids=["int64-max", "past-max-page", "past-max-per-page", "5000-digits"])
def test_page_beyond_the_bound_is_422_on_every_list(api, list_paths, operator_token, query, field):
    for path in list_paths:
        response = api.get(f"{path}?{query}", token=operator_token)

        assert response.status == 422, (path, response.body)
        assert list(response.body["error"]["details"]) == [field], path


def test_the_last_page_allowed_is_an_empty_page(api, list_paths, operator_token):
    for path in list_paths:
        response = api.get(f"{path}?page={MAX_PAGE}&per_page={MAX_PER_PAGE}", token=operator_token)

        assert response.status == 200, (path, response.body)
        assert response.data == [] and response.body["meta"]["page"] == MAX_PAGE, path
