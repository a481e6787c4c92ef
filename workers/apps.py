from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """The worker runtime: executing steps, heartbeats, shutdown, the sweeper and the
    messages that hand work to workers."""

    name = "workers"

    def ready(self) -> None:
        from vectorbea.eventlog import hooks
        from workers.dispatch import dispatch_unclaimed
        from workers.heartbeat import revoked

        hooks.register_after_commit(dispatch_unclaimed)
        hooks.register_after_commit(revoked)
