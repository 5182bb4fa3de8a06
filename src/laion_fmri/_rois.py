"""ROI listing and the ROI query grammar, from the files on disk.

Two layouts are read (see :mod:`laion_fmri.layout`):

* categorised: ``derivatives/rois/<sub>/<category>/<sub>_space-T1w_res-1pt8_label-<ROI>_mask.nii.gz``
  (labels de-hyphenated locally, e.g. ``FFA1``), with per-hemisphere
  ``.func.gii`` and FreeSurfer ``.label`` files beside each volume;
* snapshot: ``derivatives/atlases/<sub>/rois/<ROI>.nii.gz`` (category
  ``"uncategorized"``).

Query grammar: an ROI name, a category name (all of its ROIs), ``"all"``, or a
list mixing these; the result is the de-duplicated list of ROI names in
first-seen order. Unknown names raise :class:`~laion_fmri.errors.RoiNotFoundError`
listing what exists and suggesting close matches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from laion_fmri import layout
from laion_fmri.errors import RoiNotFoundError
from laion_fmri.vocab import suggest

ROI_FORMATS: tuple[str, ...] = ("volume", "func.gii", "label")
_FORMAT_ALIASES = {"volume": "volume", "nii.gz": "volume", "nii": "volume",
                   "func.gii": "func.gii", "gii": "func.gii", "label": "label"}


@dataclass(frozen=True)
class RoiIndex:
    """ROIs of one subject found on disk.

    Attributes
    ----------
    volumes : dict
        ``{roi: (category, path)}`` of the volumetric masks, sorted by name.
    categories : dict
        ``{category: [roi, ...]}`` sorted.

    Examples
    --------
    >>> RoiIndex({"OFA": ("face", Path("o.nii.gz"))}, {"face": ["OFA"]}).names
    ['OFA']
    """

    volumes: dict[str, tuple[str, Path]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """All ROI names, sorted."""
        return sorted(self.volumes)


def scan_rois(data_dir: str | os.PathLike[str], subject: str) -> RoiIndex:
    """List a subject's volumetric ROI masks on disk (both layouts).

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject : str
        Canonical subject id (``"sub-03"``).

    Returns
    -------
    RoiIndex

    Examples
    --------
    >>> scan_rois("/data", "sub-03").names  # doctest: +SKIP
    ['AFP1', 'EBA', 'FFA1', ...]
    """
    root = Path(data_dir)
    found: dict[str, tuple[str, Path]] = {}
    cat_root = root / layout.roi_prefix(subject)
    candidates: list[tuple[str, Path]] = []
    if cat_root.is_dir():
        for path in cat_root.glob("*/*.nii.gz"):
            candidates.append((path.relative_to(root).as_posix(), path))
    snap_root = root / layout.snapshot_roi_prefix(subject)
    if snap_root.is_dir():
        for path in snap_root.glob("*.nii.gz"):
            candidates.append((path.relative_to(root).as_posix(), path))
    for key, path in sorted(candidates):
        parsed = layout.parse_roi_volume_key(key)
        if parsed is None or parsed[0] != subject:
            continue
        _, category, label = parsed
        found.setdefault(label, (category, path))
    volumes = dict(sorted(found.items()))
    categories: dict[str, list[str]] = {}
    for name, (category, _) in volumes.items():
        categories.setdefault(category, []).append(name)
    return RoiIndex(volumes, dict(sorted(categories.items())))


def _not_found(item: object, index: RoiIndex, subject: str) -> RoiNotFoundError:
    if not index.volumes:
        return RoiNotFoundError(
            f"No ROI masks are on disk for {subject}, so {item!r} cannot be used. Download them "
            f"with `laion_fmri.download.download(subject={subject!r})`."
        )
    text = str(item)
    hint = suggest(text, [*index.names, *index.categories])
    return RoiNotFoundError(
        f"Unknown ROI or category {item!r} for {subject}.{hint} Available ROIs: "
        f"{', '.join(index.names)}. Categories: {', '.join(index.categories)} "
        "(or 'all')."
    )


def resolve_query(query: str | Sequence[str], index: RoiIndex, subject: str = "") -> list[str]:
    """Expand an ROI query into ROI names.

    Parameters
    ----------
    query : str or sequence of str
        ROI name, category, ``"all"``, or a list of these.
    index : RoiIndex
        From :func:`scan_rois`.
    subject : str
        For messages.

    Returns
    -------
    list of str
        De-duplicated ROI names, in the order first named.

    Raises
    ------
    RoiNotFoundError
        For an unknown name/category or an empty query.
    TypeError
        If ``query`` is neither a string nor a sequence of strings.

    Examples
    --------
    >>> idx = RoiIndex({"FFA1": ("face", Path("a")), "OFA": ("face", Path("b"))},
    ...                {"face": ["FFA1", "OFA"]})
    >>> resolve_query(["OFA", "face"], idx)
    ['OFA', 'FFA1']
    """
    items = [query] if isinstance(query, str) else query
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise TypeError(
            f"roi must be an ROI name, a category, 'all' or a list of these, not {query!r}."
        )
    if not items:
        raise RoiNotFoundError("The ROI query is empty; name at least one ROI or category.")
    names: list[str] = []
    for item in items:
        if item == "all":
            expanded = index.names
        elif item in index.volumes:
            expanded = [item]
        elif item in index.categories:
            expanded = index.categories[item]
        else:
            raise _not_found(item, index, subject)
        if item == "all" and not expanded:
            raise _not_found(item, index, subject)
        names.extend(n for n in expanded if n not in names)
    return names


def normalize_format(fmt: str) -> str:
    """Canonical ROI data format (``volume``, ``func.gii`` or ``label``).

    Parameters
    ----------
    fmt : str
        Format name or alias (``nii.gz``, ``gii``).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown format.

    Examples
    --------
    >>> normalize_format("gii")
    'func.gii'
    """
    if fmt not in _FORMAT_ALIASES:
        raise ValueError(f"Unknown ROI format {fmt!r}; use one of {', '.join(ROI_FORMATS)}.")
    return _FORMAT_ALIASES[fmt]


def normalize_hemis(hemi: str) -> tuple[str, ...]:
    """``"L"``, ``"R"`` or ``"all"`` -> tuple of hemispheres.

    Parameters
    ----------
    hemi : str
        ``"L"``, ``"R"`` or ``"all"``.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        For anything else.

    Examples
    --------
    >>> normalize_hemis("all")
    ('L', 'R')
    """
    if hemi == "all":
        return layout.HEMIS
    if hemi in layout.HEMIS:
        return (hemi,)
    raise ValueError(f"Unknown hemisphere {hemi!r}; use 'L', 'R' or 'all'.")


def surface_path(
    data_dir: str | os.PathLike[str], subject: str, category: str, label: str, hemi: str, fmt: str
) -> Path:
    """Local path of a surface (``func.gii``) or FreeSurfer ``label`` ROI file.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Local data directory.
    subject, category, label, hemi : str
        Which file (label de-hyphenated).
    fmt : {"func.gii", "label"}
        File kind.

    Returns
    -------
    Path
        The de-hyphenated path, or the hyphenated bucket name if only that exists.

    Examples
    --------
    >>> surface_path("/d", "sub-03", "face", "FFA1", "L", "label").name
    'sub-03_hemi-L_space-fsnative_label-FFA1_mask.label'
    """
    kind = "roi_surface" if fmt == "func.gii" else "roi_label"
    key = layout.key(kind, subject=subject, category=category, label=label, hemi=hemi)
    path = Path(data_dir) / layout.local_relpath(key)
    if not path.is_file() and path.parent.is_dir():
        # A tree copied straight from the bucket keeps hyphenated labels (FFA-1).
        for other in path.parent.glob(layout.pattern(kind, subject=subject, hemi=hemi)):
            if layout.bidsify(other.name) == path.name:
                return other
    return path


def read_gifti_mask(path: Path):  # type: ignore[no-untyped-def]
    """Boolean per-vertex mask from a ``.func.gii`` file (non-zero = in ROI).

    Parameters
    ----------
    path : Path
        The GIFTI file.

    Returns
    -------
    numpy.ndarray
        ``(n_vertices,)`` bool.

    Raises
    ------
    CorruptFileError
        If the file cannot be parsed.

    Examples
    --------
    >>> read_gifti_mask(Path("x_hemi-L_..._mask.func.gii"))  # doctest: +SKIP
    """
    import nibabel as nib
    import numpy as np

    from laion_fmri.errors import CorruptFileError

    try:
        img = nib.load(str(path))
        data = np.asarray(img.darrays[0].data)
    except Exception as exc:  # nibabel raises several types on bad XML
        raise CorruptFileError(f"{path} is not a readable GIFTI mask ({exc}).") from exc
    return data.ravel() != 0


def read_label_vertices(path: Path):  # type: ignore[no-untyped-def]
    """Vertex indices of a FreeSurfer ASCII ``.label`` file (in file order).

    Parameters
    ----------
    path : Path
        The ``.label`` file.

    Returns
    -------
    numpy.ndarray
        ``int64`` vertex indices.

    Raises
    ------
    CorruptFileError
        If the file is malformed.

    Examples
    --------
    >>> read_label_vertices(Path("x_hemi-L_..._mask.label"))  # doctest: +SKIP
    """
    import numpy as np

    from laion_fmri.errors import CorruptFileError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        n = int(lines[1].split()[0])
        rows = [line.split() for line in lines[2 : 2 + n]]
        vertices = np.array([int(r[0]) for r in rows], dtype=np.int64)
    except (OSError, ValueError, IndexError) as exc:
        raise CorruptFileError(f"{path} is not a FreeSurfer ASCII label file ({exc}).") from exc
    if vertices.size != n:
        raise CorruptFileError(f"{path} declares {n} vertices but lists {vertices.size}.")
    return vertices


__all__ = [
    "ROI_FORMATS",
    "RoiIndex",
    "normalize_format",
    "normalize_hemis",
    "read_gifti_mask",
    "read_label_vertices",
    "resolve_query",
    "scan_rois",
    "suggest",
    "surface_path",
]
