"""The fixed permission catalogue of an organization: what a role may allow.

A leaf module: services.organizations decides with it, the API schemas document it.
"""

from __future__ import annotations

# The fixed permission catalogue. Custom roles hold a subset; built-in roles are below.
PERMISSIONS: dict[str, str] = {
    "org:read": "See the organization and its settings.",
    "org:update": "Rename the organization and change its settings.",
    "org:delete": "Delete the organization with everything it owns.",
    "members:read": "List members and their roles.",
    "members:invite": "Invite people, add existing users, list and revoke invitations.",
    "members:remove": "Remove members.",
    "members:update_role": "Change a member's role.",
    "roles:read": "List the organization's roles.",
    "roles:write": "Create, change and delete custom roles.",
    "clients:read": "See the organization's OAuth clients.",
    "clients:write": "Register, change, delete OAuth clients and rotate their secrets.",
    "connections:read": "See the organization's single sign-on connections (identity providers) and domains.",
    "connections:write": "Connect, change and delete the organization's single sign-on identity providers; "
                         "claim, verify and route its domains and enforce single sign-on.",
    "audit:read": "Read the organization's audit trail.",
}
ALL_PERMISSIONS = frozenset(PERMISSIONS)
