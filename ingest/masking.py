"""Card numbers never reach storage or logs in the clear (PCI DSS 3.4 style):
any run of 13-19 digits that passes the Luhn check keeps its first 6 and last 4
digits, the rest become `*`."""

import re
from typing import Any

_DIGIT_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_pans(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = match.group(0)
        if not luhn_ok(digits):
            return digits
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]

    return _DIGIT_RUN.sub(mask, text)


def mask_values(record: dict[str, Any]) -> dict[str, Any]:
    """A record with every string value masked, for quarantine and logs."""
    return {k: mask_pans(v) if isinstance(v, str) else v for k, v in record.items()}
