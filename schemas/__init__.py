"""The data standard, its reference data and pure validators; imports nothing of ours."""
