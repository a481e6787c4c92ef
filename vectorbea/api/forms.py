import re
from datetime import timedelta

from django import forms

from vectorbea.accounts.models import Role, Workspace
from vectorbea.api.models import TOKEN_ROLES, ApiToken

NAME_CHARS = re.compile(r"[\w .-]+")

# How long a new token works: the choices on the form, in days ("never": no expiry).
LIFETIMES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]
NEVER = "never"
DEFAULT_LIFETIME = "90"


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=60,
        help_text="What uses it, e.g. “CI deploys” or “Zapier”.",
        error_messages={
            "required": "Give the token a name, so you can tell it apart later.",
            "max_length": "Keep the name under 60 characters.",
        },
    )
    role = forms.ChoiceField(
        label="Role",
        choices=TOKEN_ROLES,
        initial=Role.EDITOR,
        error_messages={
            "required": "Choose what the token may do.",
            "invalid_choice": "Choose Admin, Editor, Approver or Viewer: a token cannot be an "
            "owner.",
        },
    )

    expires = forms.ChoiceField(
        label="Expires after",
        choices=[*LIFETIMES, (NEVER, "Never")],
        initial=DEFAULT_LIFETIME,
        required=False,  # left out: the default
        error_messages={
            "invalid_choice": "Choose 7, 30 or 90 days, 1 year, or never.",
        },
    )

    def __init__(self, workspace: Workspace, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not NAME_CHARS.fullmatch(name):
            raise forms.ValidationError(
                "Use letters, digits, spaces, dots, dashes and underscores in the name."
            )
        if name.startswith("vb_"):
            raise forms.ValidationError(
                "That looks like a token. The name is shown to everyone who can see runs: "
                "choose a plain name."
            )
        active = ApiToken.objects.filter(workspace=self.workspace, revoked_at__isnull=True)
        if active.filter(name=name).exists():
            raise forms.ValidationError(
                f"A token named “{name}” already exists here. Choose another name, or revoke "
                "that one first."
            )
        return name

    def clean_expires(self) -> timedelta | None:
        """The token's lifetime (None: it never expires)."""
        value = self.cleaned_data["expires"] or DEFAULT_LIFETIME
        return None if value == NEVER else timedelta(days=int(value))
