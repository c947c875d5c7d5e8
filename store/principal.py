"""Who is calling: a token's id, role, provider and region, or the command line."""

from dataclasses import dataclass

from schemas.records import Role
from store.scope import Scope


@dataclass(frozen=True)
class Principal:
    token_id: int | None
    """None for payfeed itself (`source`): the command line, which acts with a
    national admin's rights since whoever runs it already holds the database, or
    the publishing schedule."""
    role: Role
    provider: str | None = None
    region: str | None = None
    source: str = "cli"

    @property
    def name(self) -> str:
        if self.token_id is None:
            return self.source
        return f"token:{self.token_id}" + (f"({self.provider})" if self.provider else "")

    @property
    def scope(self) -> Scope:
        return Scope(self.region)


COMMAND_LINE = Principal(None, Role.ADMIN)
SCHEDULE = Principal(None, Role.ADMIN, source="schedule")
