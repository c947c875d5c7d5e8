"""The Unified Social Credit Code (统一社会信用代码, GB 32100-2015) and its check character.

An enterprise is registered by this code, so a mistyped one must be refused at the door rather
than become a second enterprise. The 18th character is a mod-31 check over the first 17 in the
standard's 31-character alphabet (digits and capitals without I, O, Z, S, V).
"""

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUES = {char: value for value, char in enumerate(CHARSET)}


def uscc_check_char(first17: str) -> str:
    """The check character for the first 17 characters; ValueError if they cannot be a code."""
    if len(first17) != 17 or any(char not in _VALUES for char in first17):
        raise ValueError(f"not the first 17 characters of a USCC: {first17!r}")
    total = sum(_VALUES[char] * weight for char, weight in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def uscc_is_valid(code: str) -> bool:
    """Whether `code` is 18 characters of the alphabet whose last one is the right check.

    Upper case only, as the standard writes it: a caller that takes lower case upper-cases first.
    """
    if len(code) != 18 or any(char not in _VALUES for char in code):
        return False
    return uscc_check_char(code[:17]) == code[17]
