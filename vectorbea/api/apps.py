from django.apps import AppConfig


def revoke_tokens_of_changed_member(membership) -> None:
    """After a member's role changed or they were removed: revoke the tokens they created
    in that workspace and do not back (the same rule every API request applies)."""
    from vectorbea.api.tokens import revoke_unbacked

    revoke_unbacked(membership.workspace_id, membership.user_id)


class ApiConfig(AppConfig):
    name = "vectorbea.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from vectorbea.accounts.forms import MEMBERSHIP_HOOKS

        if revoke_tokens_of_changed_member not in MEMBERSHIP_HOOKS:
            MEMBERSHIP_HOOKS.append(revoke_tokens_of_changed_member)
