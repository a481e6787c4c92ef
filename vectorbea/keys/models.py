import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from vectorbea.accounts.models import Workspace


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"


class Keyring(models.Model):
    """A workspace's data key (wrapped by a master key) and its key policy."""

    workspace = models.OneToOneField(
        Workspace, primary_key=True, on_delete=models.CASCADE, related_name="keyring"
    )
    # nonce + AES-256-GCM ciphertext of the data key, under the master key `wrapped_by`.
    wrapped_data_key = models.BinaryField()
    wrapped_by = models.CharField(max_length=8, db_index=True)
    # True: LLM steps use only the workspace's own keys. False: they fall back to the
    # installation's key (VECTORBEA_OPENAI_API_KEY, ...) for a provider with none.
    require_own_keys = models.BooleanField(default=False)
    # What an LLM step that names no provider calls: "openai", "anthropic" or the name of
    # one of the workspace's OpenAI-compatible servers. Empty: "openai".
    default_provider = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Keyring of {self.workspace_id}"


class ProviderKey(models.Model):
    """One provider API key, encrypted by its workspace's data key. Only the last four
    characters are kept in the clear."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="provider_keys")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    label = models.CharField(max_length=100, blank=True)
    last_four = models.CharField(max_length=4)
    # nonce + AES-256-GCM ciphertext, bound to (workspace, id) by associated data.
    ciphertext = models.BinaryField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_key_per_provider",
            )
        ]
        indexes = [models.Index(fields=["workspace", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} key …{self.last_four}"

    def __repr__(self) -> str:
        return f"<ProviderKey {self.id} {self.provider} …{self.last_four}>"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class CompatibleProvider(models.Model):
    """A server that speaks OpenAI's chat completions API (Ollama, vLLM, LM Studio, Azure
    OpenAI, OpenRouter ...), named in its workspace: LLM steps pick it by `name`. Its key is
    optional (a local server may want none), encrypted like a provider key; only its last
    four characters are kept in the clear."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="compatible_providers"
    )
    name = models.CharField(max_length=100)
    base_url = models.CharField(max_length=500)
    default_model = models.CharField(max_length=200)
    last_four = models.CharField(max_length=4, blank=True)
    # nonce + AES-256-GCM ciphertext, bound to (workspace, id) by associated data; None: no key.
    ciphertext = models.BinaryField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("name"), "workspace", name="one_compatible_provider_per_name"
            )
        ]

    def __str__(self) -> str:
        return f"OpenAI-compatible provider {self.name}"

    def __repr__(self) -> str:
        return f"<CompatibleProvider {self.id} {self.name!r} {self.base_url!r}>"

    @property
    def has_key(self) -> bool:
        return self.ciphertext is not None


class WorkspaceSecret(models.Model):
    """A named value HTTP and tool steps use as {{ secrets.NAME }}, encrypted by its
    workspace's data key like a provider key. Only the last four characters are kept in
    the clear."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="workspace_secrets"
    )
    name = models.CharField(max_length=64)
    last_four = models.CharField(max_length=4)
    # nonce + AES-256-GCM ciphertext, bound to (workspace, id) by associated data.
    ciphertext = models.BinaryField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="one_secret_per_name")
        ]

    def __str__(self) -> str:
        return f"Secret {self.name} …{self.last_four}"

    def __repr__(self) -> str:
        return f"<WorkspaceSecret {self.id} {self.name} …{self.last_four}>"
