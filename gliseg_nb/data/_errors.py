"""The one exception type for bad input data."""


class DataError(ValueError):
    """Input data is missing, malformed or inconsistent.

    The message always names the file (or folder) and what is wrong with it. It subclasses
    `ValueError` so callers that catch `ValueError` keep working.
    """
