"""services.authorization_context: which organization an authorization happens in, and its token claims."""

from __future__ import annotations

import pytest

from app import errors
from app.services import authorization_context, organizations
from app.services.actor import Actor
from app.stores.denylist import MemoryDenylist
from tests import factories
from tests.factories import OAuthClientFactory, UserFactory, add_member, create_organization


@pytest.fixture
def acme(db_session, user):
    """An organization `user` owns."""
    return create_organization(db_session, owner=user, slug="acme", name="Acme Inc.")


@pytest.fixture
def globex(db_session):
    """An organization `user` is not in."""
    return create_organization(db_session, owner=UserFactory(), slug="globex", name="Globex")


def choose(db_session, user, client, requested=None):
    return authorization_context.choose_organization(db_session, user=user, client=client, requested=requested)


def assert_not_available(call) -> None:
    with pytest.raises(errors.PermissionDenied) as denied:
        call()
    assert denied.value.message == authorization_context.NOT_AVAILABLE


# --- choose_organization ----------------------------------------------------------------

def test_choose_organization_without_parameter_for_a_platform_client_is_none(db_session, user, acme):
    choice = choose(db_session, user, OAuthClientFactory())
    assert choice.organization is None
    assert not choice.needs_choice


@pytest.mark.parametrize("by", ["slug", "id"])
def test_choose_organization_named_by_slug_or_id_for_a_member(db_session, user, acme, by):
    requested = acme.slug if by == "slug" else str(acme.id)
    assert choose(db_session, user, OAuthClientFactory(), requested).organization.id == acme.id


def test_choose_organization_empty_parameter_counts_as_absent(db_session, user, acme):
    """RFC 6749 §3.1: a parameter sent without a value is treated as omitted."""
    assert choose(db_session, user, OAuthClientFactory(), "").organization is None


def test_choose_organization_unknown_and_foreign_organizations_are_refused_alike(db_session, user, globex):
    """The same message whether the organization exists or not: nothing leaks about which exist."""
    client = OAuthClientFactory()
    assert_not_available(lambda: choose(db_session, user, client, "no-such-org"))
    assert_not_available(lambda: choose(db_session, user, client, globex.slug))
    assert_not_available(lambda: choose(db_session, user, client, str(globex.id)))


def test_choose_organization_for_an_owned_client_implies_its_organization(db_session, user, acme):
    client = OAuthClientFactory(organization_id=acme.id)
    assert choose(db_session, user, client).organization.id == acme.id
    assert choose(db_session, user, client, "acme").organization.id == acme.id


def test_choose_organization_owned_client_refuses_another_organization_even_for_its_member(
        db_session, user, acme, globex):
    add_member(db_session, globex, user)
    client = OAuthClientFactory(organization_id=acme.id)
    assert_not_available(lambda: choose(db_session, user, client, "globex"))


def test_choose_organization_owned_client_refuses_a_non_member(db_session, user, globex):
    client = OAuthClientFactory(organization_id=globex.id)
    assert_not_available(lambda: choose(db_session, user, client))


def test_choose_organization_required_with_one_membership_uses_it(db_session, user, acme):
    choice = choose(db_session, user, OAuthClientFactory(organization_required=True))
    assert choice.organization.id == acme.id
    assert not choice.needs_choice


def test_choose_organization_required_with_several_memberships_asks_the_user(db_session, user, acme, globex):
    add_member(db_session, globex, user, role="admin")
    choice = choose(db_session, user, OAuthClientFactory(organization_required=True))
    assert choice.needs_choice
    assert choice.organization is None
    assert [(m.organization.slug, m.role.name) for m in choice.candidates] == [("acme", "owner"), ("globex", "admin")]


def test_choose_organization_required_without_memberships_is_refused(db_session, user):
    with pytest.raises(errors.PermissionDenied) as denied:
        choose(db_session, user, OAuthClientFactory(organization_required=True))
    assert denied.value.message == authorization_context.NO_ORGANIZATION


def test_choose_organization_required_takes_the_named_organization(db_session, user, acme, globex):
    add_member(db_session, globex, user)
    choice = choose(db_session, user, OAuthClientFactory(organization_required=True), "globex")
    assert choice.organization.id == globex.id


def test_choose_organization_a_picker_answer_counts_only_without_a_named_organization(db_session, user, acme,
                                                                                     globex):
    add_member(db_session, globex, user)
    client = OAuthClientFactory(organization_required=True)
    named = authorization_context.choose_organization(db_session, user=user, client=client, requested="acme",
                                                      picked=str(globex.id))
    assert (named.organization.id, named.from_picker) == (acme.id, False)
    picked = authorization_context.choose_organization(db_session, user=user, client=client, requested=None,
                                                       picked=str(globex.id))
    assert (picked.organization.id, picked.from_picker) == (globex.id, True)


def test_choose_organization_a_picker_answer_is_checked_like_a_named_one(db_session, user, acme, globex):
    assert_not_available(lambda: authorization_context.choose_organization(
        db_session, user=user, client=OAuthClientFactory(organization_required=True), requested=None,
        picked=str(globex.id)))


# --- claims -------------------------------------------------------------------------------

def test_member_claims_name_the_organization_and_the_current_role(db_session, user, acme):
    claims = authorization_context.member_claims(db_session, organization_id=acme.id, user=user)
    assert claims == {"org_id": str(acme.id), "org_slug": "acme", "org_name": "Acme Inc.", "org_roles": ["owner"]}

    member = UserFactory()
    membership = add_member(db_session, acme, member)
    assert authorization_context.member_claims(db_session, organization_id=acme.id, user=member)["org_roles"] == \
        ["member"]
    membership.role_id = organizations.builtin_role(db_session, acme.id, "admin").id
    db_session.commit()
    assert authorization_context.member_claims(db_session, organization_id=acme.id, user=member)["org_roles"] == \
        ["admin"]


def test_member_claims_of_a_former_member_are_none(db_session, user, acme):
    member = UserFactory()
    db_session.delete(add_member(db_session, acme, member))
    db_session.commit()
    assert authorization_context.member_claims(db_session, organization_id=acme.id, user=member) is None
    with pytest.raises(errors.PermissionDenied):
        authorization_context.require_member_claims(db_session, organization_id=acme.id, user=member)


def test_member_claims_of_a_deleted_organization_are_none(db_session, user, acme):
    org_id = acme.id
    organizations.delete_organization(db_session, actor=Actor(user=user),
                                      access=factories.access_of(db_session, user, acme),
                                      denylist=MemoryDenylist(), access_token_lifetime=600)
    db_session.commit()
    assert authorization_context.member_claims(db_session, organization_id=org_id, user=user) is None


def test_require_member_claims_for_a_member(db_session, user, acme):
    assert authorization_context.require_member_claims(db_session, organization_id=acme.id, user=user)["org_id"] == \
        str(acme.id)


def test_client_claims_of_an_owned_client_have_no_roles(db_session, acme):
    claims = authorization_context.client_claims(db_session, client=OAuthClientFactory(organization_id=acme.id))
    assert claims == {"org_id": str(acme.id), "org_slug": "acme", "org_name": "Acme Inc."}


def test_client_claims_of_a_platform_client_are_empty(db_session):
    assert authorization_context.client_claims(db_session, client=OAuthClientFactory()) == {}
