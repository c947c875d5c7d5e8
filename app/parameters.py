"""Query parameters a route does not take are refused, on every route alike.

A misspelt filter (`?provder=cmb`) silently ignored answers with every
provider's figures, which looks right and is not; a 400 naming the parameter
says what went wrong. One app-wide dependency does it from each route's own
declared parameters, so a new route is covered without doing anything.
"""

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from store.errors import BadRequest


def _declared(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


def accepted(route: APIRoute) -> frozenset[str]:
    """The query parameters `route` and its dependencies declare, by the names
    clients use (`from`, not `first_day`); a walk of a few dependencies, cheaper
    than the lookup of a cache would be worth."""
    return frozenset(_declared(route.dependant))


async def refuse_unknown_query_parameters(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = accepted(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        raise BadRequest(
            "unknown_parameter",
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} for {request.method} {route.path}; {takes}",
        )
