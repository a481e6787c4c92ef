"""Who a run started by a program counts as started by.

An API token, a webhook or a schedule starts runs on behalf of the person who created it.
`start_run(started_by=Initiator(creator, via=...))` records that person as the run's
initiator (the `started_by` of RunStarted, and the run's row), so the approval rules treat
the run as theirs: they may not approve it unless the gate allows self-approval. `via`
names the program ("api:<token name>", "webhook:<endpoint id>", "schedule:<schedule id>")
and is recorded with it for the timeline.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Initiator:
    person: Any  # a user, or None when the creator's account was deleted
    via: str

    @property
    def pk(self) -> int | None:
        return getattr(self.person, "pk", None)

    @property
    def username(self) -> str | None:
        return self.person.get_username() if self.person is not None else None
