"""Listings answered as CSV files, with a download name and any headers (the
next page's cursor) the listing adds."""

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import Response

from store.spreadsheets import CSV_MEDIA_TYPE, csv_text


def _download(filename: str, more: Mapping[str, str] | None) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"', **(more or {})}


def csv_response(
    header: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = csv_text(header, rows)
    return Response(body, media_type=CSV_MEDIA_TYPE, headers=_download(filename, headers))
