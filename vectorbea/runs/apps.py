from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "vectorbea.runs"

    def ready(self) -> None:
        from vectorbea.eventlog import hooks
        from vectorbea.runs.attention import email_when_attention_is_needed
        from vectorbea.runs.live import push_change
        from vectorbea.runs.reruns import RERUNS
        from vectorbea.steps.templating import render_step_config

        hooks.register_after_commit(push_change)
        hooks.register_after_commit(email_when_attention_is_needed)
        hooks.register_config_renderer(render_step_config)
        hooks.register_projection(RERUNS)
