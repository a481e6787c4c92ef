"""Startup check: a process whose VECTORBEA_MASTER_KEY cannot unwrap the stored data keys
refuses to start, with a message that says what to do (and no traceback).

It runs when the app registry is ready (web, worker, scheduler, every manage.py command)
and as a Django system check (keys.E001, shown by `manage.py check`). A database without
the keys table yet (a fresh install before `migrate`) or one that cannot be reached passes:
there is nothing to read, and the process will say so itself when it needs the database.
"""

import sys
import warnings

from django.conf import settings
from django.core.checks import Error
from django.db import DatabaseError, connection

from vectorbea.keys.crypto import DecryptionFailed, master_key_id

HOW_TO_ROTATE = (
    "To change master keys, list the new key first and keep the old one after it "
    "(VECTORBEA_MASTER_KEY=new,old), run `manage.py rotate_master_key`, then remove the old "
    "one."
)


def master_key_problem() -> str | None:
    """Why this process's master keys cannot read the stored data keys, or None."""
    from vectorbea.keys import vault
    from vectorbea.keys.models import Keyring

    try:
        if Keyring._meta.db_table not in connection.introspection.table_names():
            return None
        counts = vault.wrapped_by_counts()
        configured = [master_key_id(key) for key in settings.VECTORBEA_MASTER_KEYS]
        missing = {kid: n for kid, n in counts.items() if kid not in configured}
        if missing:
            needed = ", ".join(f"{kid} (used by {n} workspace(s))" for kid, n in missing.items())
            return (
                "VECTORBEA_MASTER_KEY does not hold the master key that encrypts stored "
                f"provider keys. Needed: {needed}. Configured: {', '.join(configured)}. "
                "Set VECTORBEA_MASTER_KEY to the key(s) this installation was using. "
                + HOW_TO_ROTATE
            )
        for kid in counts:
            keyring = Keyring.objects.filter(wrapped_by=kid).first()
            if keyring is None:
                continue
            try:
                vault.data_key_of(keyring)
            except DecryptionFailed:
                return (
                    f"VECTORBEA_MASTER_KEY holds a key with id {kid}, but it does not unwrap "
                    f"the data key of workspace {keyring.workspace_id}: the key is wrong or "
                    "the row was altered. Set VECTORBEA_MASTER_KEY to the key(s) this "
                    "installation was using."
                )
    except DatabaseError:
        return None
    return None


def check_master_key(app_configs=None, **kwargs) -> list[Error]:
    problem = master_key_problem()
    return [Error(problem, id="keys.E001")] if problem else []


def refuse_to_start_without_master_key() -> None:
    """Exit with a clear message if the master key cannot read the stored keys. Called from
    AppConfig.ready(): reading the database there is deliberate, so Django's warning about
    it is silenced."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", "Accessing the database during app initialization", RuntimeWarning
            )
            problem = master_key_problem()
    finally:
        connection.close()  # opened at startup, in whatever thread: hold nothing open
    if problem:
        sys.stderr.write(f"Vectorbea cannot start: {problem}\n")
        sys.stderr.flush()
        raise SystemExit(2)
