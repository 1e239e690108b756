"""/api/v1/organizations: organizations, their members and roles; /api/v1/users/me/organizations.

Views under /organizations/<org_id> authorise through require_org_permission: an API
session, or an access token with scope org:admin issued for that organization; either
way the caller acts with their current role there. The services re-check every rule.
"""

from __future__ import annotations

from flask import Blueprint

from app.api.context import (
    allow_api_key,
    current_access,
    current_actor,
    current_user,
    load_body,
    load_query,
    require_org_permission,
    require_session,
)
from app.api.envelope import created, ok, page
from app.api.openapi import documented
from app.extensions import current_settings, db, token_denylist
from app.schemas.organizations import (
    MemberIn,
    MemberListIn,
    MemberOut,
    MemberRoleIn,
    OrganizationIn,
    OrganizationOut,
    OrganizationUpdateIn,
    RoleIn,
    RoleOut,
    RoleUpdateIn,
    UserOrganizationOut,
)
from app.security.api_keys import ORGANIZATIONS_READ, ORGANIZATIONS_WRITE
from app.services import memberships, organizations, roles

bp = Blueprint("organizations", __name__, url_prefix="/api/v1")

TAG = "organizations"
ORG_AUTH = ("Authenticate with an API session token, or with an access token carrying the org:admin scope "
            "issued for this organization; either way you act with your current role in it.")
PERMISSION_CATALOGUE = "Permissions:\n\n" + "\n".join(
    f"- `{name}`: {text}" for name, text in organizations.PERMISSIONS.items())
BUILTIN_CATALOGUE = "Built-in roles (fixed):\n\n" + "\n".join(
    f"- `{name}`: {text}" for name, (text, _) in organizations.BUILTIN_ROLES.items())
ROLE_RULES = ("Built-in roles cannot be changed or deleted (409); a custom role cannot allow anything your own "
              "role does not (403).")


def _doc(*parts: str) -> str:
    return "\n\n".join((*parts, ORG_AUTH))


# --- organizations ---

@bp.post("/organizations")
@documented(summary="Create an organization; you become its owner", tag=TAG, body=OrganizationIn,
            response=OrganizationOut, status=201, errors=(409,),
            description="409 when the slug is taken. Needs an API session (access tokens cannot create one).")
@require_session
@allow_api_key(ORGANIZATIONS_WRITE)
def create_organization():
    data = load_body(OrganizationIn())
    organization = organizations.create_organization(db.session, actor=current_actor(), **data)
    db.session.commit()
    return created(OrganizationOut().dump(organization), message="Organization created.")


@bp.get("/users/me/organizations")
@documented(summary="Your organizations, with your role and permissions in each", tag=TAG,
            response=UserOrganizationOut, many=True)
@require_session
@allow_api_key(ORGANIZATIONS_READ)
def list_my_organizations():
    mine = organizations.user_organizations(db.session, user_id=current_user().id)
    return ok(UserOrganizationOut(many=True).dump(mine))


@bp.get("/organizations/<org_id>")
@documented(summary="One organization", tag=TAG, response=OrganizationOut, errors=(403, 404),
            description=_doc("Needs org:read. 404 when it does not exist or you are not a member."))
@require_org_permission("org:read")
@allow_api_key(ORGANIZATIONS_READ)
def get_organization(org_id: str):
    return ok(OrganizationOut().dump(current_access().organization))


@bp.patch("/organizations/<org_id>")
@documented(summary="Rename an organization or change its settings", tag=TAG, body=OrganizationUpdateIn,
            response=OrganizationOut, errors=(403, 404, 409), description=_doc("Needs org:update."))
@require_org_permission("org:update")
@allow_api_key(ORGANIZATIONS_WRITE)
def update_organization(org_id: str):
    data = load_body(OrganizationUpdateIn())
    organization = organizations.update_organization(db.session, actor=current_actor(), access=current_access(),
                                                     **data)
    db.session.commit()
    return ok(OrganizationOut().dump(organization), message="Organization updated.")


@bp.delete("/organizations/<org_id>")
@documented(summary="Delete an organization with its members, roles, invitations and clients", tag=TAG,
            errors=(403, 404),
            description=_doc("Needs org:delete (owners). Every token issued in the organization stops working."))
@require_org_permission("org:delete")
def delete_organization(org_id: str):
    organizations.delete_organization(db.session, actor=current_actor(), access=current_access(),
                                      denylist=token_denylist(),
                                      access_token_lifetime=current_settings().ACCESS_TOKEN_LIFETIME)
    db.session.commit()
    return ok(message="Organization deleted.")


# --- members ---

@bp.get("/organizations/<org_id>/members")
@documented(summary="List members", tag=TAG, query=MemberListIn, response=MemberOut, many=True, paginated=True,
            errors=(403, 404), description=_doc("Needs members:read. Sorted by email."))
@require_org_permission("members:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_members(org_id: str):
    query = load_query(MemberListIn())
    items, total = memberships.list_members(db.session, organization_id=current_access().organization.id, **query)
    return page(MemberOut(many=True).dump(items), total=total, page=query["page"], per_page=query["per_page"])


@bp.post("/organizations/<org_id>/members")
@documented(summary="Add an existing user by email", tag=TAG, body=MemberIn, response=MemberOut, status=201,
            errors=(403, 404, 409),
            description=_doc("Needs members:invite, and the role must be within your reach: only owners grant "
                             "owner, and nobody grants a role that allows more than their own (403). 404 when no "
                             "user has the email, 409 when they are already a member, 422 for an unknown role."))
@require_org_permission("members:invite")
@allow_api_key(ORGANIZATIONS_WRITE)
def add_member(org_id: str):
    data = load_body(MemberIn())
    membership = memberships.add_member(db.session, actor=current_actor(), access=current_access(), **data)
    db.session.commit()
    return created(MemberOut().dump(membership), message="Member added.")


@bp.patch("/organizations/<org_id>/members/<user_id>/role")
@documented(summary="Change a member's role", tag=TAG, body=MemberRoleIn, response=MemberOut,
            errors=(403, 404, 409),
            description=_doc("Needs members:update_role; both the member's current role and the new one must be "
                             "within your reach (403). 409 when it would leave the organization without an owner."))
@require_org_permission("members:update_role")
@allow_api_key(ORGANIZATIONS_WRITE)
def change_member_role(org_id: str, user_id: str):
    data = load_body(MemberRoleIn())
    membership = memberships.change_member_role(db.session, actor=current_actor(), access=current_access(),
                                                user_id=user_id, **data)
    db.session.commit()
    return ok(MemberOut().dump(membership), message="Role changed.")


@bp.delete("/organizations/<org_id>/members/<user_id>")
@documented(summary="Remove a member, or leave (your own user id)", tag=TAG, errors=(403, 404, 409),
            description=_doc("Removing someone else needs members:remove and their role within your reach (403); "
                             "leaving needs only your membership. 409 for the last owner. The member's refresh "
                             "tokens issued in this organization are revoked."))
@require_org_permission("org:read")
@allow_api_key(ORGANIZATIONS_WRITE)
def remove_member(org_id: str, user_id: str):
    memberships.remove_member(db.session, actor=current_actor(), access=current_access(), user_id=user_id,
                              denylist=token_denylist())
    db.session.commit()
    return ok(message="Member removed.")


# --- roles ---

@bp.get("/organizations/<org_id>/roles")
@documented(summary="List roles: built-in ones first, then custom ones by name", tag=TAG, response=RoleOut,
            many=True, errors=(403, 404), description=_doc("Needs roles:read.", BUILTIN_CATALOGUE,
                                                           PERMISSION_CATALOGUE))
@require_org_permission("roles:read")
@allow_api_key(ORGANIZATIONS_READ)
def list_roles(org_id: str):
    return ok(RoleOut(many=True).dump(roles.list_roles(db.session, organization_id=current_access().organization.id)))


@bp.post("/organizations/<org_id>/roles")
@documented(summary="Define a custom role", tag=TAG, body=RoleIn, response=RoleOut, status=201,
            errors=(403, 404, 409),
            description=_doc("Needs roles:write. 409 when the name is taken (built-in names included); 422 lists "
                             "unknown permissions.", ROLE_RULES, PERMISSION_CATALOGUE))
@require_org_permission("roles:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def create_role(org_id: str):
    data = load_body(RoleIn())
    role = roles.create_role(db.session, actor=current_actor(), access=current_access(), **data)
    db.session.commit()
    return created(RoleOut().dump(role), message="Role created.")


@bp.patch("/organizations/<org_id>/roles/<role_id>")
@documented(summary="Change a custom role; its members get the new permissions at once", tag=TAG,
            body=RoleUpdateIn, response=RoleOut, errors=(403, 404, 409),
            description=_doc("Needs roles:write.", ROLE_RULES, PERMISSION_CATALOGUE))
@require_org_permission("roles:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def update_role(org_id: str, role_id: str):
    data = load_body(RoleUpdateIn())
    role = roles.update_role(db.session, actor=current_actor(), access=current_access(), role_id=role_id, **data)
    db.session.commit()
    return ok(RoleOut().dump(role), message="Role updated.")


@bp.delete("/organizations/<org_id>/roles/<role_id>")
@documented(summary="Delete a custom role nobody holds", tag=TAG, errors=(403, 404, 409),
            description=_doc("Needs roles:write. 409 for built-in roles and for roles members still hold "
                             "(details.member_count). Invitations to the role are deleted with it.", ROLE_RULES))
@require_org_permission("roles:write")
@allow_api_key(ORGANIZATIONS_WRITE)
def delete_role(org_id: str, role_id: str):
    roles.delete_role(db.session, actor=current_actor(), access=current_access(), role_id=role_id)
    db.session.commit()
    return ok(message="Role deleted.")
