"""Re-wrap every workspace data key under the newest master key, online.

    VECTORBEA_MASTER_KEY=<new>,<old> manage.py rotate_master_key

Each workspace is re-wrapped in its own short transaction (the row locked), so steps keep
running meanwhile; a keyring already under the newest key is skipped, so the command can
be stopped and run again. Provider keys and workspace secrets themselves are not
re-encrypted: they stay under their workspace's data key. When it reports that nothing is
left under an old key, remove that key from VECTORBEA_MASTER_KEY and restart every process.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from vectorbea.keys import vault
from vectorbea.keys.crypto import DecryptionFailed, master_key_id
from vectorbea.keys.models import Keyring


class Command(BaseCommand):
    help = "Re-wrap every workspace data key under the newest VECTORBEA_MASTER_KEY."

    def handle(self, *args, **options) -> None:
        newest = master_key_id(settings.VECTORBEA_MASTER_KEYS[0])
        pending = list(
            Keyring.objects.exclude(wrapped_by=newest)
            .order_by("pk")
            .values_list("workspace_id", flat=True)
        )
        self.stdout.write(
            f"Newest master key: {newest}. {len(pending)} workspace data key(s) to re-wrap."
        )
        failed = []
        rewrapped = 0
        for workspace_id in pending:
            try:
                rewrapped += vault.rewrap(workspace_id)
            except Keyring.DoesNotExist:
                continue  # the workspace was deleted meanwhile
            except DecryptionFailed as exc:
                failed.append(str(exc))
        left = {kid: n for kid, n in vault.wrapped_by_counts().items() if kid != newest}
        self.stdout.write(f"Re-wrapped {rewrapped}.")
        if failed:
            raise CommandError(
                f"{len(failed)} data key(s) could not be re-wrapped:\n" + "\n".join(failed)
            )
        if left:
            waiting = ", ".join(f"{kid} ({n})" for kid, n in left.items())
            raise CommandError(f"Still wrapped by older master keys: {waiting}. Run it again.")
        retired = [master_key_id(key) for key in settings.VECTORBEA_MASTER_KEYS[1:]]
        if retired:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Every data key is under {newest}. You can now remove "
                    f"{', '.join(retired)} from VECTORBEA_MASTER_KEY and restart."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Every data key is under {newest}."))
