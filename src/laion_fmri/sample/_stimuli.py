"""Stimulus files of the sample dataset: images, metadata, embeddings, captions, segmentations."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from laion_fmri import layout
from laion_fmri.sample import _design as design
from laion_fmri.sample._writers import write_json, write_table
from laion_fmri.sample.spec import SampleSpec

_COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "grey")
_SHAPES = ("disc", "square", "triangle", "bar")
_NOUNS = ("dog", "tree", "cup", "car", "person", "chair", "bird", "window", "table", "flower")
DOC_NOUNS = ("fingers", "hand", "pullover")


def _look(z: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int], str, str, str]:
    """Foreground/background colours and words of an image, from its latents."""
    fg_idx = int(abs(z[0]) * 10) % len(_COLOURS)
    bg_idx = (fg_idx + 3 + int(abs(z[1]) * 10) % 4) % len(_COLOURS)
    shape = _SHAPES[int(abs(z[2]) * 10) % len(_SHAPES)]
    palette = {"red": (200, 40, 40), "orange": (230, 140, 30), "yellow": (230, 220, 60),
               "green": (50, 170, 60), "teal": (40, 160, 160), "blue": (40, 70, 200),
               "purple": (130, 50, 170), "grey": (128, 128, 128)}
    fg, bg = _COLOURS[fg_idx], _COLOURS[bg_idx]
    return palette[fg], palette[bg], fg, bg, shape


def _geometry(z: np.ndarray, size: int) -> tuple[int, int, int, int]:
    cx = int(size * (0.5 + 0.2 * np.tanh(z[3])))
    cy = int(size * (0.5 + 0.2 * np.tanh(z[4 % len(z)])))
    r = int(size * (0.18 + 0.08 * np.tanh(z[5 % len(z)])))
    return cx - r, cy - r, cx + r, cy + r


def render_jpeg(z: np.ndarray, size: int) -> bytes:
    """A small procedural JPEG (gradient background and one shape) for latents ``z``."""
    fg, bg, _, _, shape = _look(z)
    ramp = np.linspace(0.6, 1.0, size)[None, :, None]
    pixels = (np.array(bg)[None, None, :] * ramp * np.ones((size, 1, 1))).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    box = _geometry(z, size)
    if shape == "disc":
        draw.ellipse(box, fill=fg)
    elif shape == "square":
        draw.rectangle(box, fill=fg)
    elif shape == "triangle":
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])],
                     fill=fg)
    else:
        draw.rectangle((box[0], (box[1] + box[3]) // 2 - 3, box[2], (box[1] + box[3]) // 2 + 3),
                       fill=fg)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, optimize=False)
    return buf.getvalue()


def metadata_table(names: list[str]) -> pd.DataFrame:
    """``task-images_metadata.csv`` rows (row i = HDF5 image i)."""
    return pd.DataFrame(
        {
            "image_name": names,
            "dataset": [design.dataset_of(n) for n in names],
            "participant": [design.owner_of(n) or design.shared_participants() for n in names],
            "unique_or_shared": ["unique" if n.startswith("unique_") else "shared" for n in names],
            "n_reps": [design.planned_reps(n) for n in names],
        },
        columns=list(layout.STIMULUS_METADATA_COLUMNS),
    )


def captions_table(names: list[str], z: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Long-format captions: shared non-OOD 1 AI (idx 0) + 5 human; OOD 5 human; unique 3 human."""
    rows = []
    adjectives = ("small", "bright", "plain", "soft", "sharp", "large")
    for name, feats in zip(names, z, strict=True):
        _, _, fg, bg, shape = _look(feats)
        is_ood = name.startswith("shared_4rep_OOD_")
        n_human = 3 if name.startswith("unique_") else 5
        if name.startswith("shared_") and not is_ood:
            article = "An" if fg[0] in "aeiou" else "A"
            rows.append((name, 0, "ai", f"{article} {fg} {shape} centred on a {bg} gradient "
                         "background.",
                         "gpt-5.1", None, "gpt-5.1"))
        for k in range(1, n_human + 1):
            adj = adjectives[int(rng.integers(len(adjectives)))]
            rows.append((name, k, "human", f"a {adj} {fg} {shape} on {bg}",
                         "main3" if k <= 3 else "topup1", f"w{int(rng.integers(1000, 9999))}",
                         None))
    return pd.DataFrame(rows, columns=list(layout.CAPTION_COLUMNS))


def segmentations(names: list[str], z: np.ndarray, size: int, doc_image: str,
                  rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """Masks ``(n_masks, size, size)`` uint8 and their metadata, for shared images only."""
    masks, rows = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for name, feats in zip(names, z, strict=True):
        if not name.startswith("shared_"):
            continue
        if name == doc_image:
            nouns = list(DOC_NOUNS)
        else:
            pick = rng.choice(len(_NOUNS), size=2, replace=False)
            nouns = [_NOUNS[i] for i in pick]
        x0, y0, x1, y1 = _geometry(feats, size)
        for j, noun in enumerate(nouns):
            dx = j * size // 8
            mask = ((xx >= x0 + dx) & (xx < x1 + dx) & (yy >= y0) & (yy < y1)).astype(np.uint8)
            masks.append(mask)
            ys, xs = np.nonzero(mask)
            rows.append((len(rows), name, noun, 0, round(float(0.5 + 0.49 * rng.random()), 4),
                         int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, 1,
                         "task-images_desc-segmentations.h5"))
        # Whole-image detection: not localised (covers >= 99 % of the image).
        masks.append(np.ones((size, size), np.uint8))
        rows.append((len(rows), name, "scene", 0, 0.3, 0, 0, size, size, 0,
                     "task-images_desc-segmentations.h5"))
    frame = pd.DataFrame(rows, columns=list(layout.SEGMENTATION_COLUMNS))
    return np.stack(masks), frame


def write_stimuli(root: Path, spec: SampleSpec, names: list[str], z: np.ndarray,
                  emb: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Write every stimulus file under ``root/stimuli``."""
    # Images + metadata: row i of the CSV is element i of the HDF5.
    path = root / layout.STIMULI_IMAGES_KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", track_order=True) as fh:
        ds = fh.create_dataset(layout.H5_IMAGES, (len(names),), dtype=h5py.vlen_dtype(np.uint8))
        for i, feats in enumerate(z):
            ds[i] = np.frombuffer(render_jpeg(feats, spec.image_size), dtype=np.uint8)
    write_table(root / layout.STIMULI_METADATA_KEY, metadata_table(names))
    write_json(root / layout.sidecar_key(layout.STIMULI_IMAGES_KEY), {
        "Description": "Synthetic sample: procedural JPEG bytes; element i = metadata row i.",
        "ImageSize": [spec.image_size, spec.image_size],
        "Count": len(names),
    })

    # Embeddings: one shared row order, deliberately different from the metadata order.
    order = rng.permutation(len(names))
    ids = np.array([names[i] for i in order], dtype=object)
    for model, matrix in emb.items():
        key = layout.embeddings_key(model)
        with h5py.File(root / key, "w", track_order=True) as fh:
            fh.create_dataset(layout.H5_EMBEDDING, data=matrix[order])
            fh.create_dataset(layout.H5_IMAGE_IDS, data=ids, dtype=h5py.string_dtype("utf-8"))
            fh.create_dataset(layout.H5_VALID, data=np.ones(len(names), dtype=bool))
        write_json(root / layout.sidecar_key(key), {
            "Model": model,
            "Dimension": int(matrix.shape[1]),
            "L2Normalised": model in design.NORMALISED_MODELS,
            "Description": "Synthetic sample embeddings (linear in hidden image latents).",
        })

    write_table(root / layout.CAPTIONS_KEY, captions_table(names, z, rng))
    masks, seg = segmentations(names, z, spec.image_size, spec.doc_image, rng)
    with h5py.File(root / layout.SEGMENTATIONS_KEY, "w", track_order=True) as fh:
        fh.create_dataset(layout.H5_MASKS, data=masks, compression="gzip", shuffle=True,
                          chunks=(1, spec.image_size, spec.image_size))
    write_table(root / layout.SEGMENTATIONS_METADATA_KEY, seg)
