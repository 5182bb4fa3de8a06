"""Where the data lives locally and where it comes from.

Three settings, each resolved in the same order (first hit wins):

``data_dir``
    explicit argument -> ``LAION_FMRI_DATA_DIR`` -> persisted config.
``source``
    ``LAION_FMRI_SOURCE`` -> persisted config -> the public bucket
    ``s3://laion-fmri``. Either an ``s3://bucket`` URL or a local folder
    (plain path or ``file://`` URL) holding the same key layout.
``endpoint_url``
    ``LAION_FMRI_ENDPOINT_URL`` -> persisted config -> AWS (``us-west-2``).

The persisted config is ``$XDG_CONFIG_HOME/laion_fmri/config.json``
(default ``~/.config/laion_fmri/config.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from laion_fmri._jsonio import read_settings
from laion_fmri.errors import ConfigError, DataDirNotSetError

DEFAULT_SOURCE = "s3://laion-fmri"
DEFAULT_REGION = "us-west-2"

ENV_DATA_DIR = "LAION_FMRI_DATA_DIR"
ENV_SOURCE = "LAION_FMRI_SOURCE"
ENV_ENDPOINT_URL = "LAION_FMRI_ENDPOINT_URL"
ENV_CACHE = "LAION_FMRI_CACHE"

_SETTINGS = ("data_dir", "source", "endpoint_url")
_ENV_OF = {"data_dir": ENV_DATA_DIR, "source": ENV_SOURCE, "endpoint_url": ENV_ENDPOINT_URL}


def config_path() -> Path:
    """Return the path of the persisted configuration file.

    ``$XDG_CONFIG_HOME/laion_fmri/config.json``, or
    ``~/.config/laion_fmri/config.json`` when ``XDG_CONFIG_HOME`` is unset. The
    file need not exist.

    Returns
    -------
    Path
        Location of ``config.json``.

    Examples
    --------
    >>> config_path().name
    'config.json'
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "laion_fmri" / "config.json"


_CONFIG_SCHEMA = {name: (str, type(None)) for name in _SETTINGS}


def _read_config() -> dict[str, str]:
    path = config_path()
    data = read_settings(
        path,
        _CONFIG_SCHEMA,
        ConfigError,
        "Fix the value in the file or delete the file, then run "
        "`laion-fmri config --data-dir DIR` again.",
    )
    return {k: v for k, v in data.items() if k in _SETTINGS and v}


def _write_config(values: dict[str, str]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_pathlike(path: object, what: str) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or os.PathLike, not {type(path).__name__}.")
    text = os.fspath(path)
    if isinstance(text, bytes) or not text or "\x00" in text:
        raise TypeError(f"{what} must be a non-empty text path, got {path!r}.")
    return Path(text).expanduser()


def dataset_initialize(path: str | os.PathLike[str]) -> None:
    """Register the local data directory, once per machine.

    Parameters
    ----------
    path : str or os.PathLike
        An existing folder that will hold the downloaded dataset.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    FileNotFoundError
        If the folder does not exist.

    Examples
    --------
    >>> from laion_fmri.config import dataset_initialize
    >>> dataset_initialize("/data/laion_fmri")  # doctest: +SKIP
    """
    folder = _check_pathlike(path, "path")
    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(
            f"The data directory {str(folder)!r} is a file, not a folder. Choose a folder."
        )
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The data directory {str(folder)!r} does not exist. Create it first "
            f"(e.g. `mkdir -p {folder}`), then set it again."
        )
    try:
        (folder / ".laion_fmri").mkdir(exist_ok=True)
    except OSError as exc:
        raise PermissionError(
            f"Cannot create {folder / '.laion_fmri'} ({exc.strerror}); choose a writable folder."
        ) from exc
    values = _read_config()
    values["data_dir"] = str(folder.resolve())
    _write_config(values)


def set_source(source: str | None = None, endpoint_url: str | None = None) -> None:
    """Persist the data source and/or S3 endpoint (``None`` leaves a value as is).

    Parameters
    ----------
    source : str, optional
        ``s3://bucket`` URL, ``file://`` URL or local folder. ``""`` resets to default.
    endpoint_url : str, optional
        ``http(s)://host:port`` of an S3-compatible server. ``""`` resets to AWS.

    Raises
    ------
    ConfigError
        For a malformed URL or a local source folder that does not exist.

    Examples
    --------
    >>> set_source("s3://laion-fmri", endpoint_url="http://127.0.0.1:9000")  # doctest: +SKIP
    """
    values = _read_config()
    for name, value in (("source", source), ("endpoint_url", endpoint_url)):
        if value is None:
            continue
        if value == "":
            values.pop(name, None)
            continue
        if name == "source":
            parsed = parse_source(value)
            if parsed.kind == "local" and not (parsed.path and parsed.path.is_dir()):
                raise ConfigError(
                    f"The source folder {value!r} does not exist; give a folder holding the "
                    "bucket layout, or an s3://BUCKET URL."
                )
        else:
            _check_endpoint(value)
        values[name] = value
    _write_config(values)


def get_data_dir(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Return the data directory (argument, then env, then persisted config).

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Explicit override; returned (normalised) when given.

    Returns
    -------
    str
        The data directory path.

    Raises
    ------
    DataDirNotSetError
        If no data directory is configured anywhere.

    Examples
    --------
    >>> get_data_dir("/tmp")
    '/tmp'
    """
    if data_dir is not None:
        return str(_check_pathlike(data_dir, "data_dir"))
    value, _ = _resolve("data_dir")
    if value is None:
        raise DataDirNotSetError()
    return value


def _resolve(name: str) -> tuple[str | None, str]:
    env = os.environ.get(_ENV_OF[name])
    if env:
        return _expand(name, env), f"environment variable {_ENV_OF[name]}"
    persisted = _read_config().get(name)
    if persisted:
        return _expand(name, persisted), f"config file {config_path()}"
    return None, "default"


def _expand(name: str, value: str) -> str:
    """``~`` in a data directory (env or config) means the home folder, as on the shell."""
    return os.path.expanduser(value) if name == "data_dir" else value


@dataclass(frozen=True)
class Source:
    """A parsed data source: either an S3 bucket or a local folder.

    Normally built by :func:`parse_source` or :func:`get_source`.

    Parameters
    ----------
    kind : {"s3", "local"}
        Which kind of source this is.
    bucket : str, optional
        Bucket name (``kind="s3"`` only).
    prefix : str
        Key prefix inside the bucket, without slashes at either end (``""`` = root).
    path : Path, optional
        Folder holding the bucket key layout (``kind="local"`` only).
    endpoint_url : str, optional
        S3-compatible endpoint; ``None`` means AWS.
    region : str
        AWS region of the bucket.

    Examples
    --------
    >>> src = parse_source("s3://laion-fmri")
    >>> src.kind, src.bucket, src.is_default
    ('s3', 'laion-fmri', True)
    >>> Source("local", path=Path("/data/mirror")).url
    '/data/mirror'
    """

    kind: str  # "s3" or "local"
    bucket: str | None = None
    prefix: str = ""
    path: Path | None = None
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION

    @property
    def url(self) -> str:
        """Human-readable URL of the source, for messages."""
        if self.kind == "local":
            return str(self.path)
        base = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        return base + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    @property
    def is_default(self) -> bool:
        """True for the public LAION-fMRI bucket."""
        return self.kind == "s3" and self.bucket == "laion-fmri" and not self.endpoint_url


def _check_endpoint(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"Endpoint URL {url!r} must look like http://host:port or https://host."
        )
    return url.rstrip("/")


def parse_source(source: str, endpoint_url: str | None = None) -> Source:
    """Parse a source string into a :class:`Source`.

    Parameters
    ----------
    source : str
        ``s3://bucket[/prefix]``, ``file:///folder`` or a folder path.
    endpoint_url : str, optional
        S3-compatible endpoint for ``s3://`` sources.

    Returns
    -------
    Source

    Raises
    ------
    ConfigError
        If the string is neither form.

    Examples
    --------
    >>> parse_source("s3://laion-fmri").bucket
    'laion-fmri'
    """
    if not isinstance(source, str) or not source or "\x00" in source:
        raise ConfigError(f"Source {source!r} must be an s3:// URL or a local folder.")
    if source.startswith("s3://"):
        rest = source[len("s3://") :].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"Source {source!r} names no bucket; use s3://BUCKET.")
        endpoint = _check_endpoint(endpoint_url) if endpoint_url else None
        return Source("s3", bucket=bucket, prefix=prefix, endpoint_url=endpoint)
    if source.startswith("file://"):
        return Source("local", path=Path(urlparse(source).path))
    if "://" in source:
        raise ConfigError(
            f"Source {source!r} has an unsupported scheme; use s3://BUCKET, file:///DIR or a folder."
        )
    return Source("local", path=Path(source).expanduser())


def get_source() -> Source:
    """Return the configured data source (env, then config file, then the public bucket).

    Returns
    -------
    Source

    Examples
    --------
    >>> get_source().kind in ("s3", "local")
    True
    """
    source, _ = _resolve("source")
    endpoint, _ = _resolve("endpoint_url")
    return parse_source(source or DEFAULT_SOURCE, endpoint)


def effective_settings() -> dict[str, tuple[str | None, str]]:
    """Return every setting with its value and where it came from.

    Returns
    -------
    dict
        ``{name: (value, origin)}`` for ``data_dir``, ``source``, ``endpoint_url``.

    Examples
    --------
    >>> sorted(effective_settings())
    ['data_dir', 'endpoint_url', 'source']
    """
    out: dict[str, tuple[str | None, str]] = {}
    for name in _SETTINGS:
        value, origin = _resolve(name)
        if value is None and name == "source":
            value = DEFAULT_SOURCE
        if value is None and name == "endpoint_url":
            origin = f"default (AWS, region {DEFAULT_REGION})"
        out[name] = (value, origin)
    return out


CACHE_ON = ("1", "true", "yes", "on")
CACHE_OFF = ("0", "false", "no", "off")


def cache_enabled(cache: bool | None = None) -> bool:
    """Whether the decoded-betas cache is used (argument, then ``LAION_FMRI_CACHE``).

    Parameters
    ----------
    cache : bool, optional
        Explicit choice; wins when given. With ``None`` the environment
        variable ``LAION_FMRI_CACHE`` decides: ``1``, ``true``, ``yes``, ``on``
        (or unset/empty) enable the cache, ``0``, ``false``, ``no``, ``off``
        disable it (case-insensitive); anything else is an error.

    Returns
    -------
    bool
        ``True`` if the cache should be read and written.

    Raises
    ------
    ConfigError
        If ``LAION_FMRI_CACHE`` holds another value.

    Examples
    --------
    >>> cache_enabled(False)
    False
    >>> cache_enabled(True)
    True
    """
    if cache is not None:
        return bool(cache)
    raw = os.environ.get(ENV_CACHE, "")
    value = raw.strip().lower()
    if value in ("", *CACHE_ON):
        return True
    if value in CACHE_OFF:
        return False
    raise ConfigError(
        f"{ENV_CACHE}={raw!r} is not understood; use one of {', '.join(CACHE_ON)} (cache on) "
        f"or {', '.join(CACHE_OFF)} (cache off), or unset it."
    )


__all__ = [
    "DEFAULT_SOURCE",
    "Source",
    "cache_enabled",
    "config_path",
    "dataset_initialize",
    "effective_settings",
    "get_data_dir",
    "get_source",
    "parse_source",
    "set_source",
]
