"""Forms for workspaces and their members, and the writes they validate.

Each write is one small function named for what it does (`create_workspace`, `add_member`,
`change_role`, `remove_member`). Rules that must hold under concurrency (a workspace always
keeps an owner) are checked inside the transaction, with the owner rows locked.

Other apps act on a member's role change or removal in the same transaction through
`MEMBERSHIP_HOOKS`, which they fill in their AppConfig (the API revokes the tokens the
member does not back).
"""

from collections.abc import Callable

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from vectorbea.accounts.access import Access
from vectorbea.accounts.models import Membership, Role, Workspace

SLUG_MAX_LENGTH = Workspace._meta.get_field("slug").max_length

# Called with the membership after its role changed (`membership.role` is the new one) or
# it was removed, inside the transaction that did it.
MEMBERSHIP_HOOKS: list[Callable[[Membership], None]] = []


def _membership_changed(membership: Membership) -> None:
    for hook in MEMBERSHIP_HOOKS:
        hook(membership)


class LastOwnerError(Exception):
    """Raised when a change would leave a workspace without an owner."""

    message = "A workspace needs at least one owner. Make someone else an owner first."


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "That username and password don’t match an account. "
            "Check both (passwords are case-sensitive) and try again."
        ),
        "inactive": "This account has been switched off. Ask an owner of your workspace.",
    }


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Workspace name",
        help_text="Usually your team or company name. You can change it later.",
        error_messages={"required": "Give the workspace a name."},
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not slugify(name):
            raise forms.ValidationError(
                "Use at least one letter or number, so the workspace gets a web address."
            )
        return name


def unique_slug(name: str) -> str:
    """The first free slug for `name`: acme, acme-2, acme-3..."""
    base = slugify(name)[: SLUG_MAX_LENGTH - 4].strip("-") or "workspace"
    taken = set(
        Workspace.objects.filter(slug__regex=rf"^{base}(-\d+)?$").values_list("slug", flat=True)
    )
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def create_workspace(user, name: str) -> Workspace:
    """Create a workspace named `name` with `user` as its owner."""
    for _ in range(5):
        try:
            with transaction.atomic():
                workspace = Workspace.objects.create(slug=unique_slug(name), name=name)
                Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
                return workspace
        except IntegrityError:
            continue  # someone took the slug between our read and our insert: try the next one
    raise RuntimeError(f"Could not find a free web address for {name!r}")


def rename_workspace(workspace: Workspace, name: str) -> None:
    workspace.name = name
    workspace.save(update_fields=["name"])


def grantable_roles(access: Access) -> list[tuple[str, str]]:
    """Roles `access` may hand out: only owners make owners."""
    if access.role == Role.OWNER:
        return list(Role.choices)
    return [(value, label) for value, label in Role.choices if value != Role.OWNER]


class AddMemberForm(forms.Form):
    who = forms.CharField(
        label="Username or email",
        max_length=254,
        error_messages={"required": "Enter the username or email of the person to add."},
    )
    role = forms.ChoiceField(label="Role", initial=Role.EDITOR)

    def __init__(self, *args, access: Access, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.access = access
        self.fields["role"].choices = grantable_roles(access)

    def clean_who(self):
        who = self.cleaned_data["who"].strip()
        users = get_user_model().objects.filter(is_active=True)
        matches = list(users.filter(username__iexact=who)) or list(users.filter(email__iexact=who))
        if not matches:
            raise forms.ValidationError(
                f"No one with the username or email “{who}” has an account here. "
                "Ask them to sign up first, then add them."
            )
        if len(matches) > 1:
            raise forms.ValidationError(
                "More than one account uses that email. Enter their username instead."
            )
        user = matches[0]
        if Membership.objects.filter(workspace=self.access.workspace, user=user).exists():
            raise forms.ValidationError(f"{user.get_username()} is already a member.")
        return user


def add_member(workspace: Workspace, user, role: str) -> Membership:
    return Membership.objects.create(workspace=workspace, user=user, role=role)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args, access: Access, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = grantable_roles(access)


def may_manage(access: Access, membership: Membership) -> bool:
    """Admins manage everyone except owners; owners manage everyone."""
    return access.role == Role.OWNER or membership.role != Role.OWNER


def _lock_owners(workspace: Workspace) -> list[int]:
    return list(
        Membership.objects.select_for_update()
        .filter(workspace=workspace, role=Role.OWNER)
        .values_list("id", flat=True)
    )


def change_role(membership: Membership, role: str) -> None:
    """Give `membership` a new role, keeping at least one owner."""
    with transaction.atomic():
        owners = _lock_owners(membership.workspace)
        if role != Role.OWNER and owners == [membership.id]:
            raise LastOwnerError
        Membership.objects.filter(id=membership.id).update(role=role)
        membership.role = role
        _membership_changed(membership)


def remove_member(membership: Membership) -> None:
    """Remove `membership`, keeping at least one owner."""
    with transaction.atomic():
        owners = _lock_owners(membership.workspace)
        if owners == [membership.id]:
            raise LastOwnerError
        Membership.objects.filter(id=membership.id).delete()
        _membership_changed(membership)
