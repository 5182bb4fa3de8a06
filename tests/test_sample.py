"""The synthetic sample dataset: layout, loadability, shapes, signal, determinism, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from laion_fmri import layout
from laion_fmri.cli import main
from laion_fmri.errors import ConfigError, SampleDirError
from laion_fmri.sample import (
    SPEC_VERSION,
    ensure_sample_dataset,
    make_sample_dataset,
    real_image_names,
    sample_info,
    spec_for,
)
from laion_fmri.sample._freesurfer import freesurfer_keys, templateflow_keys
from laion_fmri.stats import average_repeats, zscore_by_session

SPEC = spec_for("tiny")


def _expected_keys(spec) -> set[str]:  # type: ignore[no-untyped-def]
    keys = set(layout.DATASET_LEVEL_KEYS)
    for sub in spec.subjects:
        for ses in spec.all_sessions:
            for key in (layout.betas_key(sub, ses), layout.session_nc_key(sub, ses),
                        layout.session_r2_key(sub, ses), layout.trials_key(sub, ses)):
                keys |= {key, layout.sidecar_key(key)}
            keys.add(layout.session_summary_key(sub, ses))
        for key in (layout.r2mean_key(sub),
                    *(layout.subject_nc_key(sub, d) for d in layout.SUBJECT_NC_DESCS)):
            keys |= {key, layout.sidecar_key(key)}
        keys.add(layout.subject_summary_key(sub))
        for category, labels in spec.rois.items():
            for label in labels:
                stored = spec.bucket_label(label)
                keys.add(layout.roi_volume_key(sub, category, stored))
                if category in spec.surface_categories:
                    for hemi in layout.HEMIS:
                        keys.add(layout.roi_surface_key(sub, category, stored, hemi))
                        keys.add(layout.roi_label_key(sub, category, stored, hemi))
    keys |= {layout.STIMULI_IMAGES_KEY, layout.sidecar_key(layout.STIMULI_IMAGES_KEY),
             layout.STIMULI_METADATA_KEY, layout.CAPTIONS_KEY, layout.SEGMENTATIONS_KEY,
             layout.SEGMENTATIONS_METADATA_KEY}
    for model in layout.EMBEDDING_MODELS:
        keys |= {layout.embeddings_key(model), layout.sidecar_key(layout.embeddings_key(model))}
    for sub in spec.subjects:  # minimal FreeSurfer tree + local TemplateFlow home (templates)
        keys |= set(freesurfer_keys(sub))
    keys |= set(templateflow_keys())
    return keys | _extra_keys(spec)


def _extra_keys(spec) -> set[str]:  # type: ignore[no-untyped-def]
    """Anatomy, raw BIDS and localizer keys (DATASET.md 2.7)."""
    keys = set()
    for sub in spec.subjects:
        for res in spec.anatomical_resolutions:
            keys |= {layout.anatomical_key(sub, suffix, res) for suffix in ("T1w", "T2w", "mask")}
        for ses in spec.raw_sessions:
            for run in range(1, spec.raw_runs + 1):
                keys.add(layout.raw_events_key(sub, ses, run))
                keys |= {layout.raw_image_key(sub, ses, run, echo, part, suffix)
                         for echo in layout.RAW_ECHOES for part in layout.RAW_PARTS
                         for suffix in ("bold", "sbref")}
        keys |= {layout.localizer_key(sub, spec.localizer_session, **m)
                 for m in spec.localizer_maps()}
    return keys


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def _tree_hash(root: Path) -> dict[str, str]:
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in _files(root).items()}


# --------------------------------------------------------------------------- layout
def test_tree_is_exactly_the_bucket_layout(sample_root: Path) -> None:
    assert set(_files(sample_root)) == _expected_keys(SPEC)
    assert all(layout.check_key(k) == k for k in _files(sample_root))
    # Hyphenated labels in the bucket, de-hyphenated by the layout's parser.
    key = layout.roi_volume_key("sub-03", "face", "FFA-1")
    assert (sample_root / key).exists()
    assert layout.parse_roi_volume_key(key) == ("sub-03", "face", "FFA1")
    assert (sample_root / layout.roi_volume_key("sub-03", "face", "pSTS-faces")).exists()


def test_every_file_loads(sample_root: Path) -> None:
    for key, path in _files(sample_root).items():
        if key.endswith(".nii.gz"):
            img = nib.load(path)
            assert np.asarray(img.dataobj).shape == img.shape
        elif key.endswith(".func.gii"):
            values = nib.load(path).darrays[0].data
            assert values.shape == (SPEC.n_vertices,)
            if not key.startswith(layout.LOCALIZER_ROOT):
                assert set(np.unique(values)) <= {0.0, 1.0}
        elif key.endswith(".label"):
            lines = path.read_text().splitlines()
            assert lines[0].startswith("#!ascii label")
            assert int(lines[1]) == len(lines) - 2 > 0
        elif key.endswith(".h5"):
            with h5py.File(path, "r") as fh:
                assert len(fh.keys()) >= 1
        elif key.endswith(".csv"):
            assert len(pd.read_csv(path)) > 0
        elif key.endswith(".tsv"):
            assert len(pd.read_csv(path, sep="\t")) > 0
        elif key.endswith(".json"):
            assert isinstance(json.loads(path.read_text()), dict)
        elif key.endswith(".surf.gii"):
            assert nib.load(path).darrays[0].data.shape[1] == 3
        elif key.endswith(".lta"):
            assert "LINEAR_RAS_TO_RAS" in path.read_text()
        elif key.startswith("derivatives/freesurfer/") and "/surf/" in key:
            coords, faces = nib.freesurfer.read_geometry(path)
            assert coords.shape[1] == 3 and faces.max() < len(coords)
        else:
            assert key == "README" and path.read_text().strip()


def test_dataset_level_files(sample_root: Path) -> None:
    participants = pd.read_csv(sample_root / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id", "age", "sex"]
    assert participants["participant_id"].tolist() == list(SPEC.subjects)
    info = sample_info(sample_root)
    assert info is not None and info["SpecVersion"] == SPEC_VERSION and info["Scale"] == "tiny"


# --------------------------------------------------------------------------- GLM files
def test_betas_shapes_affine_and_trials(sample_root: Path) -> None:
    for sub in SPEC.subjects:
        for ses in SPEC.all_sessions:
            img = nib.load(sample_root / layout.betas_key(sub, ses))
            n = SPEC.n_trials_in(sub, ses)
            assert img.shape == (*SPEC.grid_shape, n)
            np.testing.assert_allclose(img.affine, SPEC.affine, atol=1e-4)
            assert img.header.get_zooms()[:3] == pytest.approx((SPEC.voxel_size,) * 3)
            trials = pd.read_csv(sample_root / layout.trials_key(sub, ses), sep="\t")
            assert tuple(trials.columns) == layout.TRIAL_COLUMNS
            assert len(trials) == n
            assert (trials["session"] == ses).all()
            assert trials["beta_index"].tolist() == list(range(n))
            assert trials["run"].dtype.kind == "i"
            assert sorted(trials["run"].unique()) == list(range(1, SPEC.n_runs + 1))
            assert sorted(trials["label"]) == SPEC.trial_labels(sub, ses)
            for key in (layout.session_nc_key(sub, ses), layout.session_r2_key(sub, ses)):
                assert nib.load(sample_root / key).shape == SPEC.grid_shape


def test_nifti_storage_variants(sample_root: Path) -> None:
    brain = SPEC.brain_mask()
    rois = np.any(list(SPEC.roi_masks().values()), axis=0)
    seen = set()
    for sub in SPEC.subjects:
        for ses in SPEC.all_sessions:
            img = nib.load(sample_root / layout.betas_key(sub, ses))
            variant = SPEC.nifti_variant(sub, ses)
            seen.add(variant)
            dtype = img.header.get_data_dtype()
            data = img.get_fdata()
            if variant == "int16-scaled":
                assert dtype == np.dtype("<i2")
                assert img.dataobj.slope != 1 and img.dataobj.inter != 0
                assert (data[~brain] == 0).all()  # zero survives the scaling exactly
            elif variant == "float32-big-endian":
                assert dtype == np.dtype(">f4")
            else:
                assert dtype == np.dtype("<f4")
            nan = np.isnan(data).any(axis=3)
            if variant == "float32-nan":
                assert nan.sum() == SPEC.n_nan_voxels
                assert brain[nan].all() and not rois[nan].any()
                assert np.isnan(data[nan]).all()  # NaN in every trial
            else:
                assert not nan.any()
    assert seen == {"int16-scaled", "float32-big-endian", "float32-nan", "float32",
                    "float32-multimember", "float32-bgzf"}
    assert SPEC.nifti_variant("sub-03", "ses-01") == "float32"


def _gzip_members(path: Path) -> list[bytes]:
    """The raw header bytes (first 14) of every gzip member of a file."""
    import zlib

    raw, heads = path.read_bytes(), []
    while raw:
        heads.append(raw[:14])
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(raw)
        raw = d.unused_data
    return heads


def test_multi_member_sessions(sample_root: Path) -> None:
    """One session per gzip style that other tools write; nibabel reads them all."""
    for sub in SPEC.subjects:
        for ses in SPEC.all_sessions:
            path = sample_root / layout.betas_key(sub, ses)
            heads = _gzip_members(path)
            style = SPEC.gzip_style(sub, ses)
            if style == "single":
                assert len(heads) == 1
            elif style == "concatenated":  # header member + one per trial
                assert len(heads) == SPEC.n_trials_in(sub, ses) + 1
                assert not any(h[3] & 0x04 for h in heads)
            else:  # BGZF: FEXTRA with the "BC" subfield, the 28-byte EOF block last
                assert len(heads) > 2 and all(h[3] & 0x04 and h[12:14] == b"BC" for h in heads)
                assert path.read_bytes()[-28:] == bytes.fromhex(
                    "1f8b08040000000000ff0600424302001b0003000000000000000000")
    assert {SPEC.gzip_style(s, x) for s in SPEC.subjects for x in SPEC.all_sessions} == {
        "single", "concatenated", "bgzf"}


# --------------------------------------------------------------------------- anatomy, raw, localizers
def test_anatomical_folder_at_both_resolutions(sample_root: Path) -> None:
    brain = SPEC.brain_mask()
    for sub in SPEC.subjects:
        r2mean = nib.load(sample_root / layout.r2mean_key(sub))
        mask_img = nib.load(sample_root / layout.anatomical_brain_mask_key(sub))
        # The default voxel axis of the reference: on the betas grid, same affine.
        assert mask_img.shape == SPEC.grid_shape
        np.testing.assert_allclose(mask_img.affine, r2mean.affine)
        anat = np.asarray(mask_img.dataobj) != 0
        assert (anat == SPEC.anatomical_mask()).all()
        assert (anat >= brain).all() and anat.sum() > brain.sum()  # strict superset of R2mean
        assert anat.sum() == SPEC.n_anatomical_voxels
        hires = nib.load(sample_root / layout.anatomical_key(sub, "mask", "0pt8"))
        assert hires.shape == SPEC.hires_grid_shape
        np.testing.assert_allclose(nib.affines.voxel_sizes(hires.affine), [0.8] * 3)
        # Same field of view: the outer corners coincide.
        for img, shape in ((mask_img, SPEC.grid_shape), (hires, SPEC.hires_grid_shape)):
            corner = nib.affines.apply_affine(img.affine, np.array(shape) - 0.5)
            np.testing.assert_allclose(
                corner, nib.affines.apply_affine(mask_img.affine, np.array(SPEC.grid_shape) - 0.5),
                atol=SPEC.voxel_size)
        for res in SPEC.anatomical_resolutions:
            t1 = nib.load(sample_root / layout.anatomical_key(sub, "T1w", res))
            t2 = nib.load(sample_root / layout.anatomical_key(sub, "T2w", res))
            inside = SPEC.anatomical_mask(res)
            assert t1.shape == t2.shape == inside.shape
            t1d, t2d = np.asarray(t1.dataobj), np.asarray(t2.dataobj)
            assert t1d[inside].mean() > 5 * t1d[~inside].mean()
            assert t2d[inside].mean() > 5 * t2d[~inside].mean()


def test_raw_bids_tree(sample_root: Path) -> None:
    for sub in SPEC.subjects:
        for ses in SPEC.raw_sessions:
            trials = pd.read_csv(sample_root / layout.trials_key(sub, ses), sep="\t")
            for run in range(1, SPEC.raw_runs + 1):
                events = pd.read_csv(sample_root / layout.raw_events_key(sub, ses, run), sep="\t")
                assert list(events.columns) == ["onset", "duration", "trial_type", "label"]
                assert events["label"].tolist() == trials.loc[trials["run"] == run, "label"].tolist()
                assert (np.diff(events["onset"]) > 0).all()
                for echo in layout.RAW_ECHOES:
                    for part in layout.RAW_PARTS:
                        bold = nib.load(sample_root / layout.raw_image_key(sub, ses, run, echo, part))
                        sbref = nib.load(
                            sample_root / layout.raw_image_key(sub, ses, run, echo, part, "sbref"))
                        assert bold.shape == (*SPEC.grid_shape, SPEC.n_raw_volumes)
                        assert sbref.shape == SPEC.grid_shape
                        assert bold.get_data_dtype() == np.int16
                        np.testing.assert_allclose(bold.affine, SPEC.affine)
            # Magnitude decays with echo time inside the brain.
            means = [np.asarray(nib.load(sample_root / layout.raw_image_key(
                sub, ses, 1, e, "mag")).dataobj)[SPEC.anatomical_mask()].mean()
                for e in layout.RAW_ECHOES]
            assert means[0] > means[1] > means[2] > 100
    assert not (sample_root / layout.raw_session_prefix("sub-03", "ses-02")).exists()


def test_localizer_maps(sample_root: Path) -> None:
    rois = SPEC.roi_masks()
    face = np.any([rois[x] for x in SPEC.rois["face"]], axis=0)
    for sub in SPEC.subjects:
        found = sorted(p.relative_to(sample_root).as_posix()
                       for p in (sample_root / layout.localizer_prefix(sub)).rglob("*") if p.is_file())
        assert len(found) == len(SPEC.localizer_maps()) > 0
        parsed = [layout.parse_localizer_key(k) for k in found]
        assert all(f is not None and f["subject"] == sub for f in parsed)
        assert {f["task"] for f in parsed} == {"floc", "MotionLoc"}
        assert {f["run"] for f in parsed if f["stat"] == "effect"} == {1, 2}
        z = np.asarray(nib.load(sample_root / layout.localizer_key(
            sub, SPEC.localizer_session, "floc", "faceVsOthers")).dataobj)
        assert z.shape == SPEC.grid_shape and (z[~SPEC.anatomical_mask()] == 0).all()
        assert z[face].mean() > 3 > abs(z[SPEC.anatomical_mask() & ~face].mean())



def test_brain_mask_r2_and_rois(sample_root: Path) -> None:
    brain = SPEC.brain_mask()
    assert 2000 < brain.sum() < brain.size
    for sub in SPEC.subjects:
        r2mean = nib.load(sample_root / layout.r2mean_key(sub)).get_fdata()
        assert ((r2mean != 0) == brain).all()
        masks = {}
        for category, labels in SPEC.rois.items():
            for label in labels:
                img = nib.load(sample_root / layout.roi_volume_key(
                    sub, category, SPEC.bucket_label(label)))
                assert img.header.get_data_dtype() == np.uint8
                mask = np.asarray(img.dataobj) != 0
                assert mask.any() and brain[mask].all()
                masks[label] = mask
        assert (masks["V1v"] & masks["laionEVC"]).any()  # some ROIs overlap
        assert (masks["FFA1"] & masks["FFA2"]).any()


def test_repetition_structure() -> None:
    for sub in SPEC.subjects:
        code = SPEC.participant_code(sub)
        per_session = {s: SPEC.trial_labels(sub, s) for s in SPEC.sessions}
        everything = [x for labels in per_session.values() for x in labels]
        twelve = {x for x in everything if x.startswith("shared_12rep_")}
        assert SPEC.doc_image in twelve
        for labels in per_session.values():
            assert all(labels.count(x) == 2 for x in twelve)  # every session, twice
        unique = {x for x in everything if x.startswith("unique_")}
        assert unique and all(x.endswith(f"_{code}.jpg") for x in unique)
        four = {x for x in everything if not x.startswith("shared_12rep_")}
        reduced = set(SPEC.reduced_images(sub))
        for img in four:
            assert everything.count(img) == (3 if img in reduced else 4)
            assert max(labels.count(img) for labels in per_session.values()) == 2
        ood_types = {x.split("_")[3] for x in everything if x.startswith("shared_4rep_OOD_")}
        assert len(ood_types) >= 3
        assert any(x.startswith("shared_4rep_NSD_") for x in everything)
        held = SPEC.trial_labels(sub, "ses-31")
        assert held and set(held) <= set(everything)


def test_trials_cover_real_split_train_and_test() -> None:
    """Split tests on the sample are meaningful: both sides of every split occur."""
    splits = pytest.importorskip("laion_fmri.splits")
    get_ids = getattr(splits, "get_train_test_ids", None)
    if get_ids is None:
        pytest.skip("laion_fmri.splits.get_train_test_ids not available yet")
    labels = {x for s in SPEC.sessions for x in SPEC.trial_labels("sub-03", s)}
    for name in ("random_0", "tau", "cluster_k5_0", "cluster_k5_4"):
        for pool in ("shared", "sub-03"):
            train, test = get_ids(name, pool)
            assert labels & set(train) and labels & set(test), (name, pool)


# --------------------------------------------------------------------------- stimuli
def test_stimulus_files(sample_root: Path) -> None:
    meta = pd.read_csv(sample_root / layout.STIMULI_METADATA_KEY)
    assert tuple(meta.columns) == layout.STIMULUS_METADATA_COLUMNS
    names = meta["image_name"].tolist()
    assert names == SPEC.stimulus_names()
    assert len(set(names)) == len(names)
    assert set(names) <= set(real_image_names())
    assert SPEC.doc_image in names
    assert set(meta["dataset"]) == {"LAION", "NSD", "THINGS", "THINGSplus", "OOD"}
    assert "shared_4rep_OOD_unusual_Screenshot 2024-05-06 at 14.45.09.jpg" in names
    for sub in SPEC.subjects:
        for ses in SPEC.all_sessions:
            trials = pd.read_csv(sample_root / layout.trials_key(sub, ses), sep="\t")
            assert set(trials["label"]) <= set(names)
        owned = meta[meta["participant"] == sub]["image_name"]
        assert owned.str.endswith(f"_{SPEC.participant_code(sub)}.jpg").all()
    assert (meta.loc[meta["unique_or_shared"] == "shared", "n_reps"].isin([4, 12])).all()
    # Like the real table, it also lists unique images of subjects without trials here.
    others = set(meta["participant"]) - set(SPEC.subjects) - {";".join(layout.SUBJECTS)}
    assert others == {"sub-05", "sub-06", "sub-07"}

    with h5py.File(sample_root / layout.STIMULI_IMAGES_KEY, "r") as fh:
        images = fh[layout.H5_IMAGES]
        assert len(images) == len(names)
        for i in (0, len(names) - 1):
            img = Image.open(io.BytesIO(images[i].tobytes()))
            assert img.format == "JPEG" and img.size == (SPEC.image_size, SPEC.image_size)


def test_embeddings_join_by_name(sample_root: Path) -> None:
    names = pd.read_csv(sample_root / layout.STIMULI_METADATA_KEY)["image_name"].tolist()
    orders = []
    for model in layout.EMBEDDING_MODELS:
        with h5py.File(sample_root / layout.embeddings_key(model), "r") as fh:
            emb = fh[layout.H5_EMBEDDING][:]
            ids = [x.decode() for x in fh[layout.H5_IMAGE_IDS][:]]
            valid = fh[layout.H5_VALID][:]
        assert emb.dtype == np.float16 and emb.shape == (len(names), layout.EMBEDDING_DIMS[model])
        assert valid.dtype == bool and valid.all()
        assert sorted(ids) == sorted(names) and ids != names  # join by name, not position
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)
        if model in ("CLIP", "PEcore", "SigLIP2"):
            np.testing.assert_allclose(norms, 1.0, atol=2e-3)
        else:
            assert not np.allclose(norms, 1.0, atol=0.05)
        orders.append(ids)
    assert all(o == orders[0] for o in orders)


def test_captions_and_segmentations(sample_root: Path) -> None:
    meta = pd.read_csv(sample_root / layout.STIMULI_METADATA_KEY)
    caps = pd.read_csv(sample_root / layout.CAPTIONS_KEY)
    assert tuple(caps.columns) == layout.CAPTION_COLUMNS
    for name in meta["image_name"]:
        rows = caps[caps["image_name"] == name]
        human = rows[rows["source"] == "human"]
        ai = rows[rows["source"] == "ai"]
        if name.startswith("unique_"):
            assert len(human) == 3 and ai.empty
        elif name.startswith("shared_4rep_OOD_"):
            assert len(human) == 5 and ai.empty
        else:
            assert len(human) == 5 and ai["caption_idx"].tolist() == [0]
            assert ai["participant_id"].isna().all()
        assert sorted(human["caption_idx"]) == list(range(1, len(human) + 1))
        assert human["ai_model"].isna().all()

    seg = pd.read_csv(sample_root / layout.SEGMENTATIONS_METADATA_KEY)
    assert tuple(seg.columns) == layout.SEGMENTATION_COLUMNS
    shared = set(meta.loc[meta["unique_or_shared"] == "shared", "image_name"])
    assert set(seg["image_name"]) == shared
    doc = seg[(seg["image_name"] == SPEC.doc_image) & (seg["localized"] == 1)]
    assert doc["noun"].tolist() == ["fingers", "hand", "pullover"]
    with h5py.File(sample_root / layout.SEGMENTATIONS_KEY, "r") as fh:
        masks = fh[layout.H5_MASKS]
        assert masks.dtype == np.uint8 and masks.compression == "gzip" and masks.shuffle
        assert masks.shape == (len(seg), SPEC.image_size, SPEC.image_size)
        assert seg["mask_row"].tolist() == list(range(len(seg)))
        row = seg.iloc[0]
        m = masks[int(row["mask_row"])]
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
            row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"])
        unlocalised = seg[seg["localized"] == 0]
        assert (masks[int(unlocalised.iloc[0]["mask_row"])] == 1).all()


# --------------------------------------------------------------------------- planted signal
def _ridge_score(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    scores = []
    for _ in range(5):
        idx = rng.permutation(len(x))
        test, train = idx[: len(x) // 4], idx[len(x) // 4:]
        # Ridge (lambda = 1) in its dual form: fewer images than embedding dimensions.
        gram = x[train] @ x[train].T + np.eye(len(train))
        pred = x[test] @ x[train].T @ np.linalg.solve(gram, y[train])
        pc = pred - pred.mean(axis=0)
        yc = y[test] - y[test].mean(axis=0)
        r = (pc * yc).sum(axis=0) / np.sqrt((pc**2).sum(axis=0) * (yc**2).sum(axis=0))
        scores.append(np.nanmean(r))
    return float(np.mean(scores))


def test_planted_signal_recoverable_from_clip(sample_root: Path) -> None:
    rois = SPEC.roi_masks()
    ffa = rois["FFA1"] | rois["FFA2"] | rois["laionEVC"]
    outside = SPEC.brain_mask() & ~np.any(list(rois.values()), axis=0)
    with h5py.File(sample_root / layout.embeddings_key("CLIP"), "r") as fh:
        ids = [x.decode() for x in fh[layout.H5_IMAGE_IDS][:]]
        emb = fh[layout.H5_EMBEDDING][:].astype(np.float64)
    row = {n: i for i, n in enumerate(ids)}
    betas, trials = [], []
    for ses in SPEC.sessions:
        data = nib.load(sample_root / layout.betas_key("sub-03", ses)).get_fdata()
        betas.append(np.concatenate([data[ffa].T, data[outside].T[:, :200]], axis=1))
        trials.append(pd.read_csv(sample_root / layout.trials_key("sub-03", ses), sep="\t"))
    table = pd.concat(trials, ignore_index=True)
    z = zscore_by_session(np.concatenate(betas), table["session"])
    means, names, _ = average_repeats(z, table["label"])
    x = emb[[row[n] for n in names]]
    n_roi = int(ffa.sum())
    aligned = _ridge_score(x, means[:, :n_roi], np.random.default_rng(0))
    shuffled = _ridge_score(x[np.random.default_rng(1).permutation(len(x))], means[:, :n_roi],
                            np.random.default_rng(0))
    noise_only = _ridge_score(x, means[:, n_roi:], np.random.default_rng(0))
    assert aligned > 0.3
    assert abs(shuffled) < 0.15 and abs(noise_only) < 0.15


# --------------------------------------------------------------------------- build behaviour
def test_deterministic_fast_and_small(sample_root: Path, tmp_path: Path) -> None:
    start = time.perf_counter()
    again = make_sample_dataset(tmp_path / "again", scale="tiny", seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    hashes = _tree_hash(again)
    assert hashes == _tree_hash(sample_root)
    assert sum(p.stat().st_size for p in _files(again).values()) < 50e6
    other = _tree_hash(make_sample_dataset(tmp_path / "other", scale="tiny", seed=1))
    betas = layout.betas_key("sub-03", "ses-01")
    assert other[betas] != hashes[betas]
    assert other[layout.STIMULI_METADATA_KEY] == hashes[layout.STIMULI_METADATA_KEY]


def test_refuses_foreign_folder_and_replaces_previous_sample(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(SampleDirError, match="not empty"):
        make_sample_dataset(foreign)
    assert (foreign / "thesis.txt").read_text() == "precious"
    target = make_sample_dataset(tmp_path / "s", seed=0)
    (target / "stale.txt").write_text("x")
    make_sample_dataset(target, seed=0)
    assert not (target / "stale.txt").exists()
    with pytest.raises(ConfigError, match="scale"):
        make_sample_dataset(tmp_path / "bad", scale="huge")


def test_ensure_sample_dataset_caches_and_rebuilds(tmp_path: Path) -> None:
    root = ensure_sample_dataset("tiny", seed=0, cache_root=tmp_path)
    assert root.is_relative_to(tmp_path) and sample_info(root) is not None
    stamp = (root / "participants.tsv").stat().st_mtime_ns
    assert ensure_sample_dataset("tiny", seed=0, cache_root=tmp_path) == root
    assert (root / "participants.tsv").stat().st_mtime_ns == stamp
    desc = root / "dataset_description.json"
    data = json.loads(desc.read_text())
    data["GeneratedBy"][0]["SpecVersion"] = SPEC_VERSION - 1
    desc.write_text(json.dumps(data))
    assert ensure_sample_dataset("tiny", seed=0, cache_root=tmp_path) == root
    assert sample_info(root)["SpecVersion"] == SPEC_VERSION
    leftovers = [p.name for p in (tmp_path / "sample").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_ensure_sample_dataset_default_cache(monkeypatch: pytest.MonkeyPatch,
                                            isolated_config: Path) -> None:
    root = ensure_sample_dataset("tiny")
    assert root.is_relative_to(isolated_config / "cache")


def test_cli_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(tmp_path / "cli"), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "sub-03" in out and "ses-31" in out
    assert sample_info(tmp_path / "cli")["Seed"] == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert main(["sample", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_spec_for_validation() -> None:
    with pytest.raises(ConfigError):
        spec_for("medium")
    with pytest.raises(ConfigError):
        spec_for("tiny", n_trials=0)
    assert spec_for("full-grid").grid_shape == (143, 143, 143)
    assert spec_for("full-grid").n_trials == 256
    assert spec_for("small").n_trials_in("sub-01", "ses-01") > SPEC.n_trials_in("sub-01", "ses-01")


def test_trials_override(tmp_path: Path) -> None:
    spec = spec_for("tiny", n_trials=30)
    assert all(spec.n_trials_in(s, e) == 30 for s in spec.subjects for e in spec.sessions)
    root = make_sample_dataset(tmp_path / "t", scale="tiny", n_trials=30)
    img = nib.load(root / layout.betas_key("sub-01", "ses-02"))
    assert img.shape[3] == 30


@pytest.mark.slow
def test_full_grid_streams_real_grid(tmp_path: Path) -> None:
    spec = spec_for("full-grid", n_trials=12)
    root = make_sample_dataset(tmp_path / "full", scale="full-grid", n_trials=12)
    img = nib.load(root / layout.betas_key("sub-03", "ses-01"))
    assert img.shape == (143, 143, 143, 12)
    brain = spec.brain_mask()
    assert 50_000 < brain.sum() < 70_000
    vol = np.asarray(img.dataobj[..., 5])
    assert (vol[~brain] == 0).all() and np.isfinite(vol[brain]).all() and vol[brain].std() > 0
    r2 = nib.load(root / layout.r2mean_key("sub-03")).get_fdata()
    assert ((r2 != 0) == brain).all()


def test_bundled_label_data() -> None:
    names = real_image_names()
    assert len(names) == 25052 and list(names) == sorted(names)
    assert names[0] == "shared_12rep_LAION_cluster_1003_i0.jpg"
    assert names[-1] == "unique_THINGS_zucchini_p05.jpg"
    assert sum(n.startswith("shared_") for n in names) == 1492
    for sub in ("sub-01", "sub-03", "sub-05", "sub-06", "sub-07"):
        code = SPEC.participant_code(sub)
        assert sum(n.endswith(f"_{code}.jpg") and n.startswith("unique_") for n in names) == 4712
