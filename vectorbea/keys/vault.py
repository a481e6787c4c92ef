"""The workspace key store: the writes that add, replace and revoke provider keys and set
and delete workspace secrets, the two reads that decrypt (`key_state`, called only by
vectorbea.llm.keys.provider_key; `secret_values`, called only by
vectorbea.steps.workspace_secrets), and re-wrapping data keys under the newest master key.

Keys and secrets are written only here, each change in its own transaction.
"""

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.db.models.functions import Now
from django.utils import timezone

from vectorbea.accounts.models import Workspace
from vectorbea.keys import crypto
from vectorbea.keys.models import CompatibleProvider, Keyring, ProviderKey, WorkspaceSecret
from vectorbea.keys.redaction import remember


def newest_master_key() -> bytes:
    return settings.VECTORBEA_MASTER_KEYS[0]


def keyring_for(workspace: Workspace) -> Keyring:
    """The workspace's keyring, made (with a fresh data key) on first use."""
    keyring = Keyring.objects.filter(workspace=workspace).first()
    if keyring is not None:
        return keyring
    master = newest_master_key()
    data_key = crypto.new_data_key()
    try:
        with transaction.atomic():
            return Keyring.objects.create(
                workspace=workspace,
                wrapped_data_key=crypto.wrap_data_key(data_key, workspace.id, master),
                wrapped_by=crypto.master_key_id(master),
            )
    except IntegrityError:  # made by someone else between our read and our insert
        return Keyring.objects.get(workspace=workspace)


def data_key_of(keyring: Keyring) -> bytes:
    return crypto.unwrap_data_key(
        keyring.wrapped_data_key,
        keyring.workspace_id,
        keyring.wrapped_by,
        settings.VECTORBEA_MASTER_KEYS,
    )


@dataclass(frozen=True)
class KeyState:
    """What calling `provider` from a workspace may use: its own key (decrypted: value, id,
    last four; None without one) and whether it may use only its own."""

    own: tuple[str, str, str] | None = field(repr=False)
    own_only: bool


# A process keeps a workspace's key state for this long: thousands of calls a second read
# (and decrypt) the key once, and a key added, replaced or revoked elsewhere is in use by
# every worker within this many seconds, as the workspace's limits are. Changes made here
# are seen at once, and so is a provider (or a default) set up where there was none: that
# a workspace has none is never kept.
KEY_STATE_TTL_SECONDS = 5.0
_states: dict[tuple[UUID, str], tuple[float, KeyState]] = {}
_states_lock = threading.Lock()
# The same for compatible providers (by lower-cased name) and the default's name ("default").
_compatible: dict[tuple[UUID, str], tuple[float, Any]] = {}


def key_state(workspace_id: UUID, provider: str) -> KeyState:
    """The workspace's key for `provider` and its policy, as read within the last
    KEY_STATE_TTL_SECONDS (a read decrypts the key and records its use)."""
    now = time.monotonic()
    with _states_lock:
        cached = _states.get((workspace_id, provider))
    if cached is not None and now - cached[0] < KEY_STATE_TTL_SECONDS:
        return cached[1]
    own = active_key(workspace_id, provider)
    state = KeyState(
        own=None if own is None else (plaintext_of(own), str(own.id), own.last_four),
        own_only=requires_own_keys(workspace_id),
    )
    with _states_lock:
        if len(_states) > 10_000:
            _states.clear()
        _states[workspace_id, provider] = (now, state)
    return state


def _changed(workspace_id: UUID) -> None:
    """This process reads the workspace's keys afresh at their next use."""
    with _states_lock:
        for key in [key for key in _states if key[0] == workspace_id]:
            del _states[key]
        for key in [key for key in _compatible if key[0] == workspace_id]:
            del _compatible[key]


def active_key(workspace_id: UUID, provider: str) -> ProviderKey | None:
    return (
        ProviderKey.objects.filter(
            workspace_id=workspace_id, provider=provider, revoked_at__isnull=True
        )
        .order_by("-created_at")
        .first()
    )


def add_key(workspace: Workspace, provider: str, value: str, label: str, by) -> ProviderKey:
    """Store `value` as the workspace's key for `provider`, revoking the one it replaces."""
    keyring = keyring_for(workspace)
    key = ProviderKey(
        id=uuid4(),
        workspace=workspace,
        provider=provider,
        label=label,
        last_four=value[-4:],
        created_by=by,
    )
    key.ciphertext = crypto.encrypt_key(data_key_of(keyring), workspace.id, key.id, value)
    remember(value)
    with transaction.atomic():
        # Serialise changes to one workspace's keys: two replaces never both stay active.
        Keyring.objects.select_for_update().filter(pk=keyring.pk).first()
        ProviderKey.objects.filter(
            workspace=workspace, provider=provider, revoked_at__isnull=True
        ).update(revoked_at=Now())
        key.save(force_insert=True)
    _default_if_none(workspace, provider)
    _changed(workspace.id)
    return key


def revoke_key(key: ProviderKey) -> bool:
    """Revoke `key`; False if it already was."""
    revoked = ProviderKey.objects.filter(id=key.id, revoked_at__isnull=True).update(
        revoked_at=Now()
    )
    _changed(key.workspace_id)
    return bool(revoked)


def set_policy(workspace: Workspace, require_own_keys: bool) -> None:
    keyring = keyring_for(workspace)
    Keyring.objects.filter(pk=keyring.pk).update(require_own_keys=require_own_keys)
    _changed(workspace.id)


def requires_own_keys(workspace_id: UUID) -> bool:
    return Keyring.objects.filter(workspace_id=workspace_id, require_own_keys=True).exists()


def plaintext_of(key: ProviderKey) -> str:
    """Decrypt `key` and record the use (`key_state` calls it)."""
    keyring = Keyring.objects.get(workspace_id=key.workspace_id)
    value = crypto.decrypt_key(data_key_of(keyring), key.workspace_id, key.id, key.ciphertext)
    remember(value)
    ProviderKey.objects.filter(id=key.id).update(last_used_at=Now())
    return value


def set_default_provider(workspace: Workspace, name: str) -> None:
    """Make `name` ("openai", "anthropic" or a compatible provider's name) what LLM steps
    that name no provider call."""
    keyring = keyring_for(workspace)
    Keyring.objects.filter(pk=keyring.pk).update(default_provider=name)
    _changed(workspace.id)


def default_provider(workspace_id: UUID, fresh: bool = False) -> str:
    """What an LLM step that names no provider calls (empty: none chosen), as read within
    the last KEY_STATE_TTL_SECONDS unless `fresh`."""
    now = time.monotonic()
    cache_key = (workspace_id, "default")
    with _states_lock:
        cached = _compatible.get(cache_key)
    if not fresh and cached is not None and now - cached[0] < KEY_STATE_TTL_SECONDS:
        return cached[1]
    name = (
        Keyring.objects.filter(workspace_id=workspace_id)
        .values_list("default_provider", flat=True)
        .first()
        or ""
    )
    if name:  # "none chosen" is read afresh: a provider set up a moment ago is seen at once
        with _states_lock:
            _compatible[cache_key] = (now, name)
    return name


def _default_if_none(workspace: Workspace, name: str) -> None:
    """The first provider a workspace sets up becomes its default."""
    keyring = keyring_for(workspace)
    Keyring.objects.filter(pk=keyring.pk, default_provider="").update(default_provider=name)
    _changed(workspace.id)


def compatible_provider(workspace_id: UUID, name: str) -> CompatibleProvider | None:
    """The workspace's OpenAI-compatible provider called `name` (case does not matter)."""
    return CompatibleProvider.objects.filter(
        workspace_id=workspace_id, name__iexact=name.strip()
    ).first()


def save_compatible_provider(
    workspace: Workspace,
    name: str,
    base_url: str,
    default_model: str,
    key: str | None,
    by,
    *,
    remove_key: bool = False,
) -> tuple[CompatibleProvider, bool]:
    """Create the provider `name`, or change the one of that name: its base URL and model,
    and its key when `key` is given (None keeps the key it has; `remove_key` drops it).
    Returns the provider and whether it is new."""
    keyring = keyring_for(workspace)
    data_key = data_key_of(keyring)
    if key:
        remember(key)
    with transaction.atomic():
        # Serialise changes to one workspace's providers: two saves of a name never collide.
        Keyring.objects.select_for_update().filter(pk=keyring.pk).first()
        entry = compatible_provider(workspace.id, name)
        created = entry is None
        if entry is None:
            entry = CompatibleProvider(id=uuid4(), workspace=workspace, created_by=by)
        else:
            entry.updated_at = timezone.now()
        entry.name = name
        entry.base_url = base_url
        entry.default_model = default_model
        if key:
            entry.ciphertext = crypto.encrypt_key(data_key, workspace.id, entry.id, key)
            entry.last_four = key[-4:]
        elif remove_key:
            entry.ciphertext, entry.last_four = None, ""
        if created:
            entry.save(force_insert=True)
        else:
            entry.save(
                update_fields=[
                    "name",
                    "base_url",
                    "default_model",
                    "ciphertext",
                    "last_four",
                    "updated_at",
                ]
            )
    _default_if_none(workspace, entry.name)
    _changed(workspace.id)
    return entry, created


def delete_compatible_provider(entry: CompatibleProvider) -> bool:
    """Delete `entry` (and stop it being the default); False if it already was."""
    deleted, _ = CompatibleProvider.objects.filter(pk=entry.pk).delete()
    Keyring.objects.filter(
        workspace_id=entry.workspace_id, default_provider__iexact=entry.name
    ).update(default_provider="")
    _changed(entry.workspace_id)
    return bool(deleted)


@dataclass(frozen=True)
class CompatibleState:
    """What calling a compatible provider uses: where, which model by default, and its key
    (decrypted: value, id, last four; None without one)."""

    name: str
    base_url: str
    default_model: str
    key: tuple[str, str, str] | None = field(repr=False)


def compatible_state(workspace_id: UUID, name: str) -> CompatibleState | None:
    """The compatible provider `name` as read within the last KEY_STATE_TTL_SECONDS (a read
    decrypts its key and records its use); None if the workspace has none of that name."""
    now = time.monotonic()
    cache_key = (workspace_id, "compatible:" + name.strip().lower())
    with _states_lock:
        cached = _compatible.get(cache_key)
    if cached is not None and now - cached[0] < KEY_STATE_TTL_SECONDS:
        return cached[1]
    entry = compatible_provider(workspace_id, name)
    state = None
    if entry is not None:
        key = None
        if entry.ciphertext is not None:
            keyring = Keyring.objects.get(workspace_id=workspace_id)
            value = crypto.decrypt_key(
                data_key_of(keyring), workspace_id, entry.id, bytes(entry.ciphertext)
            )
            remember(value)
            key = (value, str(entry.id), entry.last_four)
        CompatibleProvider.objects.filter(pk=entry.pk).update(last_used_at=Now())
        state = CompatibleState(entry.name, entry.base_url, entry.default_model, key)
    if state is None:  # read afresh next time: a provider added a moment ago is seen at once
        return None
    with _states_lock:
        if len(_compatible) > 10_000:
            _compatible.clear()
        _compatible[cache_key] = (now, state)
    return state


def set_secret(
    workspace: Workspace, name: str, value: str, by
) -> tuple[WorkspaceSecret, str | None]:
    """Store `value` as the workspace's secret `name`, replacing the value it had: the
    secret, and the last four characters of the value it replaced (None for a new one)."""
    keyring = keyring_for(workspace)
    data_key = data_key_of(keyring)
    remember(value)
    with transaction.atomic():
        # Serialise changes to one workspace's secrets: two saves of a name never collide.
        Keyring.objects.select_for_update().filter(pk=keyring.pk).first()
        secret = WorkspaceSecret.objects.filter(workspace=workspace, name=name).first()
        if secret is None:
            secret = WorkspaceSecret(
                id=uuid4(), workspace=workspace, name=name, last_four=value[-4:], created_by=by
            )
            secret.ciphertext = crypto.encrypt_secret(data_key, workspace.id, secret.id, value)
            secret.save(force_insert=True)
            return secret, None
        replaced = secret.last_four
        WorkspaceSecret.objects.filter(pk=secret.pk).update(
            ciphertext=crypto.encrypt_secret(data_key, workspace.id, secret.id, value),
            last_four=value[-4:],
            updated_by=by,
            updated_at=Now(),
        )
    secret.refresh_from_db()
    return secret, replaced


def delete_secret(secret: WorkspaceSecret) -> bool:
    """Delete `secret`; False if it already was."""
    deleted, _ = WorkspaceSecret.objects.filter(pk=secret.pk).delete()
    return bool(deleted)


def secret_names(workspace_id: UUID) -> set[str]:
    return set(
        WorkspaceSecret.objects.filter(workspace_id=workspace_id).values_list("name", flat=True)
    )


def secret_values(workspace_id: UUID, names: Iterable[str]) -> dict[str, str]:
    """{name: plaintext} of those of `names` the workspace has (a missing one is left
    out), each remembered for redaction and its use recorded. Only
    vectorbea.steps.workspace_secrets calls this."""
    secrets = list(WorkspaceSecret.objects.filter(workspace_id=workspace_id, name__in=names))
    if not secrets:
        return {}
    data_key = data_key_of(Keyring.objects.get(workspace_id=workspace_id))
    values = {}
    for secret in secrets:
        value = crypto.decrypt_secret(data_key, workspace_id, secret.id, secret.ciphertext)
        remember(value)
        values[secret.name] = value
    WorkspaceSecret.objects.filter(pk__in=[secret.pk for secret in secrets]).update(
        last_used_at=Now()
    )
    return values


def rewrap(workspace_id: UUID) -> bool:
    """Re-wrap one workspace's data key under the newest master key, in its own
    transaction with the row locked. False if it already was (safe to run again)."""
    master = newest_master_key()
    newest = crypto.master_key_id(master)
    with transaction.atomic():
        keyring = Keyring.objects.select_for_update().get(workspace_id=workspace_id)
        if keyring.wrapped_by == newest:
            return False
        data_key = data_key_of(keyring)
        Keyring.objects.filter(pk=workspace_id).update(
            wrapped_data_key=crypto.wrap_data_key(data_key, workspace_id, master),
            wrapped_by=newest,
            rewrapped_at=Now(),
        )
    return True


def wrapped_by_counts() -> dict[str, int]:
    """{master key id: number of workspace data keys it wraps}."""
    rows = Keyring.objects.values("wrapped_by").annotate(n=Count("pk")).order_by()
    return {row["wrapped_by"]: row["n"] for row in rows}
