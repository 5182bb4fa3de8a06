"""Every exception the package raises on purpose.

Each one subclasses the built-in exception a caller would naturally catch
(``ValueError``, ``FileNotFoundError`` ...), so ``except ValueError`` keeps
working, and each message says what to do next.
"""

from __future__ import annotations

import importlib
from typing import Any


class LaionFMRIError(Exception):
    """Base class of every error raised on purpose by ``laion_fmri``."""


class DataDirNotSetError(LaionFMRIError):
    """No data directory is configured.

    Parameters
    ----------
    message : str, optional
        Replaces the default message, which explains the three ways to set one.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or (
                "No LAION-fMRI data directory is configured. Set one with "
                "`laion_fmri.config.dataset_initialize('/path/to/data')` in Python, "
                "`laion-fmri config --data-dir DIR` on the command line, or the "
                "LAION_FMRI_DATA_DIR environment variable."
            )
        )


class ConfigError(LaionFMRIError, ValueError):
    """A configuration value is malformed (a bad source URL, endpoint, ...)."""


class DataNotFoundError(LaionFMRIError, FileNotFoundError):
    """Requested data does not exist locally or in the source."""


class DataNotDownloadedError(DataNotFoundError):
    """The data exists in the source but has not been downloaded yet."""


class NoMatchingDataError(DataNotFoundError):
    """A download's filters matched no object in the source."""


class StimuliNotDownloadedError(DataNotFoundError):
    """A stimulus file (images, embeddings, captions, ...) is not on disk."""


class StimulusNotFoundError(LaionFMRIError, KeyError, ValueError):
    """An image name, trial index, embedding model or noun is unknown.

    Both a ``KeyError`` (lookup by name) and a ``ValueError`` (bad argument); the
    message lists valid values or close matches.
    """

    def __str__(self) -> str:  # KeyError would repr-quote the message
        return str(self.args[0]) if self.args else ""


class SubjectNotFoundError(LaionFMRIError, ValueError):
    """A subject identifier is malformed or unknown."""


class SessionNotFoundError(LaionFMRIError, ValueError):
    """A session identifier is malformed or not available."""


class RoiNotFoundError(LaionFMRIError, ValueError):
    """An ROI or ROI category is not available for the subject."""


class LicenseNotAcceptedError(LaionFMRIError, RuntimeError):
    """The dataset license (or the stimulus data-use agreement) was not accepted."""


class UnsafeKeyError(LaionFMRIError, ValueError):
    """A remote key would resolve to a path outside the data directory."""


class SourceUnavailableError(LaionFMRIError, ConnectionError):
    """The configured data source cannot be reached."""


class AccessDeniedError(LaionFMRIError, PermissionError):
    """The source refused an object (for example a held-out session)."""


class DownloadError(LaionFMRIError, RuntimeError):
    """A transfer failed after every retry; the message names the key and cause."""


class IntegrityError(LaionFMRIError, OSError):
    """Bytes on disk do not match what the source advertised."""


class CorruptFileError(LaionFMRIError, ValueError):
    """A local file is malformed (bad NIfTI header, wrong HDF5 shape, missing column)."""


class AccessServiceError(LaionFMRIError, RuntimeError):
    """The stimulus access service returned an error."""


class TermsOutdatedError(AccessServiceError):
    """The accepted data-use terms are older than the service's current terms."""


class AccessRevokedError(AccessServiceError):
    """The stimulus access grant was revoked."""


class AccessNotFoundError(AccessServiceError):
    """The stimulus access request id is unknown to the service."""


class RateLimitedError(AccessServiceError):
    """The access service asked us to slow down (HTTP 429)."""


class MissingDependencyError(LaionFMRIError, ImportError):
    """An optional dependency (torch, dask, xarray ...) is needed but missing.

    Parameters
    ----------
    package : str
        Import name of the missing package (kept as ``.package``).
    extra : str
        The ``laion-fmri[extra]`` that installs it (kept as ``.extra``).
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"This feature needs `{package}`. Install it with `pip install 'laion-fmri[{extra}]'`."
        )
        self.package = package
        self.extra = extra

    @classmethod
    def require(cls, package: str, extra: str) -> Any:
        """Import ``package``, or raise this error naming the extra that installs it.

        Parameters
        ----------
        package : str
            Import name, e.g. ``"dask.array"``.
        extra : str
            The ``laion-fmri[extra]`` that installs it.

        Returns
        -------
        module
            The imported module.

        Raises
        ------
        MissingDependencyError
            The package cannot be imported.

        Examples
        --------
        >>> MissingDependencyError.require("json", "core").__name__
        'json'
        """
        try:
            return importlib.import_module(package)
        except ImportError as exc:
            raise cls(package.split(".")[0], extra) from exc


class SplitError(LaionFMRIError, ValueError):
    """A split name, pool, variant or OOD-type selection is unknown or invalid."""


class StatsInputError(LaionFMRIError, ValueError):
    """Arrays given to ``laion_fmri.stats`` do not fit together or lack repeats."""


class ObjectChangedError(DownloadError):
    """An object changed in the source during a resumed transfer (``If-Match`` failed)."""


class FilterError(LaionFMRIError, ValueError):
    """A download filter (entity value, datatype, glob, ``n_jobs``) is malformed."""


class SampleDirError(LaionFMRIError, FileExistsError):
    """The sample-dataset target folder is not empty and holds no previous sample."""


__all__ = [
    "AccessDeniedError",
    "AccessNotFoundError",
    "AccessRevokedError",
    "AccessServiceError",
    "ConfigError",
    "CorruptFileError",
    "DataDirNotSetError",
    "DataNotDownloadedError",
    "DataNotFoundError",
    "DownloadError",
    "FilterError",
    "IntegrityError",
    "LaionFMRIError",
    "LicenseNotAcceptedError",
    "MissingDependencyError",
    "NoMatchingDataError",
    "ObjectChangedError",
    "RateLimitedError",
    "RoiNotFoundError",
    "SampleDirError",
    "SessionNotFoundError",
    "SourceUnavailableError",
    "SplitError",
    "StatsInputError",
    "StimuliNotDownloadedError",
    "StimulusNotFoundError",
    "SubjectNotFoundError",
    "TermsOutdatedError",
    "UnsafeKeyError",
]
