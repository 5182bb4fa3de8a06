"""Pure design of a sample dataset: images, schedules, geometry, planted signal.

Nothing here writes files. Everything that depends only on the spec (which
images, how many trials, where the brain and ROIs are) is seed-independent;
arrays drawn at random take a ``numpy.random.Generator``.
"""

from __future__ import annotations

import gzip
import json
import random
from functools import lru_cache
from importlib import resources

import numpy as np

from laion_fmri.layout import EMBEDDING_DIMS, SUBJECTS
from laion_fmri.sample._fields import SpecFields

#: BIDS subject -> participant code carried by its unique images (DATASET.md 4.2).
PARTICIPANT_CODES: dict[str, str] = {
    "sub-01": "p01",
    "sub-03": "p04",
    "sub-05": "p03",
    "sub-06": "p02",
    "sub-07": "p05",
}
NORMALISED_MODELS = ("CLIP", "PEcore", "SigLIP2")

# ROI centres and semi-axes in units of the brain radii (x: + right, y: + anterior).
_ROI_GEOMETRY: dict[str, tuple[tuple[float, float, float], float]] = {
    "laionEVC": ((0.0, -0.62, 0.0), 0.36),
    "V1v": ((0.0, -0.72, -0.2), 0.22),
    "V1d": ((0.0, -0.72, 0.2), 0.22),
    "hV4": ((0.3, -0.5, -0.35), 0.2),
    "FFA1": ((0.45, -0.25, -0.42), 0.2),
    "FFA2": ((0.45, -0.06, -0.42), 0.2),
    "OFA": ((0.5, -0.5, -0.12), 0.18),
    "pSTSfaces": ((0.66, -0.1, 0.22), 0.18),
    "PPA": ((-0.4, -0.2, -0.42), 0.2),
    "OPA": ((-0.52, -0.5, 0.28), 0.18),
    "EBA": ((-0.6, -0.42, -0.02), 0.18),
}


# --------------------------------------------------------------------------- images
@lru_cache(maxsize=1)
def all_labels() -> tuple[str, ...]:
    """Every real image ID (25,052, sorted) from the bundled label list."""
    data = resources.files("laion_fmri").joinpath("data", "stimulus_labels.txt.gz").read_bytes()
    return tuple(gzip.decompress(data).decode("utf-8").split("\n")[:-1])


@lru_cache(maxsize=1)
def _curated() -> dict[str, list[str]]:
    text = resources.files("laion_fmri").joinpath("data", "sample_images.json").read_text("utf-8")
    return json.loads(text)["pools"]


@lru_cache(maxsize=16)
def pool(kind: str) -> tuple[str, ...]:
    """Ordered real IDs of one pool: curated names first, then the rest in a fixed order.

    ``kind`` is ``shared_12rep``, ``shared_4rep_nsd``, ``shared_4rep_ood`` or
    ``unique_<sub>``.
    """
    curated = _curated()[kind]
    if kind.startswith("unique_"):
        code = PARTICIPANT_CODES[kind.removeprefix("unique_")]
        rest = [x for x in all_labels() if x.startswith("unique_") and x.endswith(f"_{code}.jpg")]
    else:
        prefix = {"shared_12rep": "shared_12rep_", "shared_4rep_nsd": "shared_4rep_NSD_",
                  "shared_4rep_ood": "shared_4rep_OOD_"}[kind]
        rest = [x for x in all_labels() if x.startswith(prefix)]
    seen = set(curated)
    rest = [x for x in rest if x not in seen]
    random.Random(kind).shuffle(rest)
    return tuple(curated) + tuple(rest)


def image_counts(spec: SpecFields) -> dict[str, int]:
    """Number of images drawn from each pool (``unique`` is per subject)."""
    if spec.n_trials is None:
        return {"shared_12rep": spec.n_shared_12rep, "shared_4rep_nsd": spec.n_shared_4rep_nsd,
                "shared_4rep_ood": spec.n_shared_4rep_ood, "unique": spec.n_unique}
    # Enough images that every session overflows n_trials; the schedule then truncates.
    m = len(spec.sessions)
    per_image = 2.0 if m <= 2 else 4.0 / m  # mean presentations of a 4rep image per session
    n12 = max(2, spec.n_trials // 6)
    n4 = max(3, int(np.ceil((spec.n_trials - 2 * n12) / per_image)) + m)
    nsd = max(1, n4 // 8)
    ood = max(2, n4 // 6)
    return {"shared_12rep": n12, "shared_4rep_nsd": nsd, "shared_4rep_ood": ood,
            "unique": max(1, n4 - nsd - ood)}


def subject_images(spec: SpecFields, subject: str) -> dict[str, tuple[str, ...]]:
    """Images one subject sees, by pool kind (``unique`` = that subject's own)."""
    counts = image_counts(spec)
    return {
        "shared_12rep": pool("shared_12rep")[: counts["shared_12rep"]],
        "shared_4rep_nsd": pool("shared_4rep_nsd")[: counts["shared_4rep_nsd"]],
        "shared_4rep_ood": pool("shared_4rep_ood")[: counts["shared_4rep_ood"]],
        "unique": pool(f"unique_{subject}")[: counts["unique"]],
    }


def reduced_images(spec: SpecFields, subject: str) -> tuple[str, ...]:
    """Images that lost one planned repetition (excluded from 4rep/12rep ceilings)."""
    if spec.n_trials is not None or len(spec.sessions) < 3:
        return ()
    return (subject_images(spec, subject)["unique"][-1],)


def session_images(spec: SpecFields, subject: str) -> dict[str, list[str]]:
    """Unordered trial labels of every session (main and held-out).

    12rep images appear twice in every main session. Each 4rep image (NSD,
    OOD, unique) appears twice in one session and once in each of the next two
    (cyclically), so every image repeats within some session. With
    ``n_trials`` set, each session is filled pairs-first and cut to exactly
    ``n_trials``.
    """
    imgs = subject_images(spec, subject)
    twelve = imgs["shared_12rep"]
    four = imgs["shared_4rep_nsd"] + imgs["shared_4rep_ood"] + imgs["unique"]
    reduced = set(reduced_images(spec, subject))
    m = len(spec.sessions)
    pattern = {1: (2,), 2: (2, 2)}.get(m, (2, 1, 1))
    out: dict[str, list[str]] = {}
    for s, session in enumerate(spec.sessions):
        pairs = [x for img in twelve for x in (img, img)]
        singles: list[str] = []
        for i, img in enumerate(four):
            offset = (s - i) % m
            if offset >= len(pattern):
                continue
            reps = pattern[offset]
            if img in reduced and offset == len(pattern) - 1:
                reps -= 1
            (pairs if reps == 2 else singles).extend([img] * reps)
        labels = pairs + singles
        if spec.n_trials is not None:
            labels = labels[: spec.n_trials]
        out[session] = labels
    for session in spec.held_out_sessions:
        out[session] = [x for img in twelve for x in (img, img)] + list(imgs["shared_4rep_ood"][:2])
    return out


def catalogue(spec: SpecFields) -> list[str]:
    """Every image in the stimulus files, sorted: all trial images plus the doc examples."""
    names: set[str] = set()
    for subject in spec.subjects:
        for group in subject_images(spec, subject).values():
            names.update(group)
    for values in _curated().values():
        # The documentation's example names lead each curated pool; other subjects'
        # unique images appear in the stimulus files without trials, as in the real set.
        names.update(values[:2])
    return sorted(names)


def dataset_of(name: str) -> str:
    """Source pool of an image name (metadata ``dataset`` column)."""
    body = name.removeprefix("shared_12rep_").removeprefix("shared_4rep_").removeprefix("unique_")
    for prefix, value in (("LAION", "LAION"), ("NSD", "NSD"), ("THINGS+", "THINGSplus"),
                          ("THINGS", "THINGS"), ("OOD", "OOD")):
        if body.startswith(prefix + "_"):
            return value
    raise ValueError(f"cannot classify image name {name!r}")


def owner_of(name: str) -> str | None:
    """BIDS subject owning a unique image, ``None`` for shared images."""
    if not name.startswith("unique_"):
        return None
    code = name.rsplit("_", 1)[1].split(".", 1)[0]
    return {v: k for k, v in PARTICIPANT_CODES.items()}[code]


def planned_reps(name: str) -> int:
    """Planned presentations across the 30 main sessions (12 or 4)."""
    return 12 if name.startswith("shared_12rep_") else 4


def shared_participants() -> str:
    """``participant`` value of shared rows in the metadata table."""
    return ";".join(SUBJECTS)


# --------------------------------------------------------------------------- geometry
def _normalised_coords(spec: SpecFields) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre = (np.array(spec.grid_shape) - 1) / 2.0 + np.array([0.0, 0.5, 0.5])
    axes = [(np.arange(n) - c) / r for n, c, r in zip(spec.grid_shape, centre, spec.brain_radii,
                                                      strict=True)]
    # Open (broadcasting) grids: full-size arrays appear only in the final expressions.
    return np.meshgrid(*(a.astype(np.float32) for a in axes), indexing="ij", sparse=True)


def brain_mask(spec: SpecFields) -> np.ndarray:
    """Boolean brain blob: a gently deformed ellipsoid (seed-independent)."""
    u, v, w = _normalised_coords(spec)
    dist = np.sqrt(u * u + v * v + w * w)
    bump = 0.06 * np.sin(3.0 * u + 0.5) * np.cos(2.0 * v) + 0.04 * np.sin(2.5 * w)
    return dist < 1.0 + bump


def roi_masks(spec: SpecFields) -> dict[str, np.ndarray]:
    """Boolean volumes of every ROI (inside the brain mask; some overlap)."""
    u, v, w = _normalised_coords(spec)
    brain = brain_mask(spec)
    out = {}
    for label in spec.roi_labels:
        (cu, cv, cw), radius = _ROI_GEOMETRY[label]
        dist = np.sqrt((u - cu) ** 2 + (v - cv) ** 2 + (w - cw) ** 2)
        out[label] = (dist < radius) & brain
    return out


def _grow(mask: np.ndarray) -> np.ndarray:
    """One step of 6-neighbour binary dilation (no wrap-around)."""
    out = mask.copy()
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        out[tuple(lo)] |= mask[tuple(hi)]
        out[tuple(hi)] |= mask[tuple(lo)]
    return out


def _nearest_index(spec: SpecFields, res: str) -> list[np.ndarray]:
    """Per axis: the 1.8 mm voxel nearest to each voxel centre of grid ``res``."""
    src, dst = spec.anatomical_affine("1pt8"), spec.anatomical_affine(res)
    shape = spec.grid_shape if res == "1pt8" else spec.hires_grid_shape
    out = []
    for axis, n in enumerate(shape):
        world = dst[axis, axis] * np.arange(n) + dst[axis, 3]
        index = np.rint((world - src[axis, 3]) / src[axis, axis]).astype(int)
        out.append(np.clip(index, 0, spec.grid_shape[axis] - 1))
    return out


def anatomical_mask(spec: SpecFields, res: str = "1pt8") -> np.ndarray:
    """The anatomical brain mask of grid ``res``: the brain blob grown by one voxel, resampled."""
    coarse = _grow(brain_mask(spec))
    if res == "1pt8":
        return coarse
    i, j, k = _nearest_index(spec, res)
    return coarse[np.ix_(i, j, k)]


def sphere_vertices(n: int) -> np.ndarray:
    """``(n, 3)`` quasi-uniform points on a 60 mm sphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return 60.0 * np.stack(
        [np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1
    )


def surface_mask(spec: SpecFields, label: str, hemi: str) -> np.ndarray:
    """0/1 per-vertex mask of an ROI on one hemisphere (a spherical cap)."""
    verts = sphere_vertices(spec.n_vertices)
    (cu, cv, cw), radius = _ROI_GEOMETRY[label]
    centre = np.array([abs(cu) * (1 if hemi == "R" else -1) + 0.2, cv, cw])
    centre = 60.0 * centre / np.linalg.norm(centre)
    return (np.linalg.norm(verts - centre, axis=1) < 60.0 * radius * 1.2).astype(np.float32)


# --------------------------------------------------------------------------- signal
def latents(spec: SpecFields, names: list[str], rng: np.random.Generator) -> np.ndarray:
    """Latent features ``(n_images, latent_dim)`` behind every embedding and image."""
    return rng.standard_normal((len(names), spec.latent_dim))


def embeddings(z: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float16 embeddings of every model, linear in the latents plus noise."""
    out = {}
    for model, dim in EMBEDDING_DIMS.items():
        proj = rng.standard_normal((z.shape[1], dim)) / np.sqrt(z.shape[1])
        emb = z @ proj + 0.25 * rng.standard_normal((z.shape[0], dim))
        if model in NORMALISED_MODELS:
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        else:
            emb *= 2.0
        out[model] = emb.astype(np.float16)
    return out


def voxel_signal(clip: np.ndarray, n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """Per-image signal ``(n_images, n_voxels)`` = CLIP @ fixed weights, unit variance."""
    weights = rng.standard_normal((clip.shape[1], n_voxels), dtype=np.float32)
    signal = (clip.astype(np.float32) @ weights).astype(np.float64)
    signal -= signal.mean(axis=0)
    signal /= signal.std(axis=0)
    return signal


def session_runs(n_trials: int, n_runs: int) -> np.ndarray:
    """Run number (1-based int) of every trial: consecutive, near-equal blocks."""
    return np.concatenate(
        [np.full(len(block), r + 1) for r, block in enumerate(np.array_split(np.arange(n_trials),
                                                                              n_runs))]
    ).astype(np.int64)


def int16_scaling(values: np.ndarray) -> tuple[float, float]:
    """``(slope, inter)`` for int16 storage; powers of two so 0.0 round-trips exactly."""
    finite = values[np.isfinite(values)]
    lo, hi = float(finite.min(initial=0.0)), float(finite.max(initial=0.0))
    span = max(hi - lo, 1e-6)
    slope = 2.0 ** np.ceil(np.log2(span / 65000.0))
    inter = slope * round((hi + lo) / 2.0 / slope)
    return float(slope), float(inter)
