"""The closed list of categories (SPEC section 1) and the MCC → category table (section 2).

A record's category is its merchant account's, else its MCC's from this table, else its
enterprise's, else `other`; an MCC missing here is not an error, it just falls through.
"""

CATEGORIES: tuple[str, ...] = (
    "auto",
    "appliance",
    "home",
    "apparel",
    "maternal_infant",
    "electronics",
    "green_health",
    "catering",
    "grocery",
    "department_store",
    "culture_tourism",
    "services",
    "other",
)

_CODES_BY_CATEGORY: dict[str, str] = {
    "auto": "5511 5521 5531 5532 5533 5541 5542 5551 5561 5571 5592 5599 7531 7534 7535 7538 "
    "7542 7549",
    "appliance": "5722",
    "electronics": "4812 5045 5732 5734 5946",
    "home": "5200 5211 5231 5251 5261 5712 5713 5714 5718 5719",
    "apparel": "5611 5621 5631 5651 5655 5661 5681 5691 5697 5698 5699 5944 5948",
    "maternal_infant": "5641",
    "green_health": "5912 5975 5976 8011 8021 8031 8041 8042 8043 8049 8050 8062 8071 8099",
    "catering": "5811 5812 5813 5814",
    "grocery": "5411 5422 5441 5451 5462 5499",
    "department_store": "5300 5309 5310 5311 5331 5399",
    "culture_tourism": "4511 4722 5942 5970 5971 5972 5973 7011 7012 7832 7841 7911 7922 7929 "
    "7932 7933 7941 7991 7996 7997 7998 7999",
    "services": "7210 7211 7216 7221 7230 7251 7261 7273 7276 7277 7278 7296 7297 7298 7299",
}

MCC_CATEGORY: dict[str, str] = {
    mcc: category for category, codes in _CODES_BY_CATEGORY.items() for mcc in codes.split()
}
