"""`manage.py seed_demo`: the "Demo" workspace and its people, so a newcomer can sign in.

Idempotent: run it any number of times and there is still one workspace, one user per demo
login and one membership each; passwords are reset to the documented ones. With DEBUG on the
documented passwords are used; with DEBUG off it refuses them and needs --password (or
VECTORBEA_DEMO_PASSWORD), which then applies to every demo user.
"""

import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from vectorbea.accounts.models import Membership, Role, Workspace

WORKSPACE_SLUG = "demo"
WORKSPACE_NAME = "Demo"


@dataclass(frozen=True)
class DemoUser:
    username: str
    email: str
    first_name: str
    last_name: str
    role: str
    default_password: str


DEMO_USERS = (
    DemoUser("demo", "demo@vectorbea.local", "Demo", "Owner", Role.OWNER, "vectorbea-demo"),
    DemoUser(
        "approver",
        "approver@vectorbea.local",
        "Ada",
        "Approver",
        Role.APPROVER,
        "vectorbea-approver",
    ),
    DemoUser("viewer", "viewer@vectorbea.local", "Vic", "Viewer", Role.VIEWER, "vectorbea-viewer"),
)
DEFAULT_PASSWORDS = frozenset(user.default_password for user in DEMO_USERS)


def seed_example_workflows(workspace: Workspace, owner: Any = None) -> None:
    """The example workflows, published, in the demo workspace. Idempotent: `seed_demo`
    runs on every `scripts/run`."""
    from vectorbea.workflows.examples import install_examples

    install_examples(workspace, owner)


def seed_demo(password: str | None = None) -> tuple[Workspace, list[tuple[DemoUser, str]]]:
    """Create or refresh the demo workspace and users. Returns the (user, password) logins."""
    User = get_user_model()
    logins = []
    with transaction.atomic():
        workspace, _ = Workspace.objects.update_or_create(
            slug=WORKSPACE_SLUG, defaults={"name": WORKSPACE_NAME}
        )
        for demo in DEMO_USERS:
            user, _ = User.objects.update_or_create(
                username=demo.username,
                defaults={
                    "email": demo.email,
                    "first_name": demo.first_name,
                    "last_name": demo.last_name,
                    "is_active": True,
                },
            )
            user_password = password or demo.default_password
            user.set_password(user_password)
            user.save(update_fields=["password"])
            Membership.objects.update_or_create(
                workspace=workspace, user=user, defaults={"role": demo.role}
            )
            logins.append((demo, user_password))
        owner = User.objects.get(username=DEMO_USERS[0].username)
        seed_example_workflows(workspace, owner)
    return workspace, logins


class Command(BaseCommand):
    help = "Create or refresh the Demo workspace and its demo logins (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help="password for every demo user (or set VECTORBEA_DEMO_PASSWORD); required "
            "when DEBUG is off, where the documented defaults are refused",
        )

    def handle(self, *args, password=None, **options):
        password = password or os.environ.get("VECTORBEA_DEMO_PASSWORD") or None
        if not settings.DEBUG:
            if not password or password in DEFAULT_PASSWORDS:
                raise CommandError(
                    "DEBUG is off, so seed_demo will not create logins with the documented "
                    "demo passwords. Pass --password or set VECTORBEA_DEMO_PASSWORD."
                )
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("That password is too weak: " + " ".join(exc.messages)) from exc

        workspace, logins = seed_demo(password)
        self.stdout.write(f'Workspace "{workspace.name}" ({workspace.slug}) is ready. Sign in as:')
        self.stdout.write(f"  {'username':<10} {'password':<24} role")
        for demo, user_password in logins:
            shown = user_password if password is None else "(the password you gave)"
            self.stdout.write(f"  {demo.username:<10} {shown:<24} {demo.role}")
