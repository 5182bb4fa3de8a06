"""The error classes under the reference package's module name (``laion_fmri._errors``).

The classes are the ones of :mod:`laion_fmri.errors` (same objects, same
built-in bases as the reference: ``DataNotDownloadedError`` is a
``FileNotFoundError``, ``SubjectNotFoundError`` a ``ValueError`` ...), so
``except`` clauses written against either module catch the same errors.
``DataNotConfiguredError`` is the name the reference's documentation uses for
:class:`~laion_fmri.errors.DataDirNotSetError`.
"""

from laion_fmri.errors import (
    AccessNotFoundError,
    AccessRevokedError,
    AccessServiceError,
    DataDirNotSetError,
    DataNotDownloadedError,
    DataNotFoundError,
    LicenseNotAcceptedError,
    NoMatchingDataError,
    StimuliNotDownloadedError,
    SubjectNotFoundError,
    TermsOutdatedError,
)

DataNotConfiguredError = DataDirNotSetError

__all__ = [
    "AccessNotFoundError",
    "AccessRevokedError",
    "AccessServiceError",
    "DataDirNotSetError",
    "DataNotConfiguredError",
    "DataNotDownloadedError",
    "DataNotFoundError",
    "LicenseNotAcceptedError",
    "NoMatchingDataError",
    "StimuliNotDownloadedError",
    "SubjectNotFoundError",
    "TermsOutdatedError",
]
