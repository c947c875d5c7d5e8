"""The region a caller sees and manages: national, one province or one city.

The campaign runs at four levels (ministry, province, city, enterprise), and so
does access: a `viewer` or `admin` token carries a region, and everything it reads
or writes is restricted to the cities of that region. `Scope` is that restriction
as one value — hashable, with a stable `key` — so that queries filter by it in SQL
(`Scope.where`), writes check each row against it (`Scope.require_city`), and
caches of answers can be keyed by it.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func

from schemas.regions import CITIES, PROVINCES, resolve_city
from store.errors import BadRequest, Forbidden

NATIONAL_KEY = "national"


def parse_region(text: str | None) -> str | None:
    """A token's region from its written form: empty or `national` for none, a
    two-digit province prefix, or a city code (a county code means its city)."""
    if text is None or text.strip() in ("", NATIONAL_KEY):
        return None
    text = text.strip()
    if len(text) == 2 and text in PROVINCES:
        return text
    city = resolve_city(text)
    if city is None:
        raise BadRequest(
            "unknown_region",
            f"{text!r} is neither a GB/T 2260 province prefix (2 digits) nor a city code",
        )
    return city.code


@dataclass(frozen=True)
class Scope:
    """`region` is None (national), a province prefix or a city code."""

    region: str | None = None

    @property
    def national(self) -> bool:
        return self.region is None

    @property
    def province(self) -> str | None:
        """The province of a provincial or city scope."""
        return None if self.region is None else self.region[:2]

    @property
    def city(self) -> str | None:
        return self.region if self.region is not None and len(self.region) == 6 else None

    @property
    def key(self) -> str:
        """A stable name of the scope, for cache keys and logs."""
        return self.region or NATIONAL_KEY

    def describe(self) -> str:
        if self.region is None:
            return "national"
        name = PROVINCES[self.region] if len(self.region) == 2 else CITIES[self.region].name
        return f"{name} ({self.region})"

    def covers_city(self, city: str) -> bool:
        if self.region is None:
            return True
        if len(self.region) == 2:
            return city[:2] == self.region
        return city == self.region

    def covers_province(self, province: str) -> bool:
        """A whole province is covered by the national scope and its own only."""
        return self.region is None or self.region == province

    def covers_unit(self, unit: str) -> bool:
        """A report or policy unit: a province prefix or a city code."""
        return self.covers_province(unit) if len(unit) == 2 else self.covers_city(unit)

    def where(self, column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
        """The SQL conditions that keep the rows whose `column` (a city code, or a
        unit: a province prefix or a city code) is in scope; none for the national
        scope: `.where(*scope.where(table.c.city))`. A province prefix is in a
        province's scope and in no city's (`left('33', 6) <> '330100'`)."""
        if self.region is None:
            return []
        return [func.left(column, len(self.region)) == self.region]

    def require_city(self, city: str, what: str) -> None:
        if not self.covers_city(city):
            raise self.refusal(what)

    def require_unit(self, unit: str, what: str) -> None:
        if not self.covers_unit(unit):
            raise self.refusal(what)

    def refusal(self, what: str) -> Forbidden:
        """The 403 for `what` lying outside the scope. It never repeats the region
        asked for: an error names nothing of another region."""
        return Forbidden(
            "out_of_scope", f"{what} is outside this token's region, {self.describe()}"
        )


NATIONAL = Scope()
