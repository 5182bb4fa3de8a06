"""The end-to-end walk-through behind ``laion-fmri demo``.

It builds (or reuses) the sample dataset, serves it as the data *source*, and
walks the user journey through the real code paths: configure, discover,
download (with progress, then an idempotent re-run), load betas with ROI /
category / noise-ceiling filters, write a NIfTI back, choose the brain mask
of the voxel axis, download and read anatomy, FreeSurfer, raw runs and localizer maps, align stimuli,
apply the ``tau`` split, fit CLIP embeddings to betas, and save figures
(including the noise ceiling on fsaverage).

The user's persisted configuration is never touched: the demo sets its data
directory, source and TemplateFlow home (the sample's own) through environment
variables of its own process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def _ridge_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, alpha: float = 10.0) -> float:
    """Mean test correlation across voxels of a closed-form ridge fit."""
    x_mean, y_mean = x_train.mean(0), y_train.mean(0)
    xt, yt = x_train - x_mean, y_train - y_mean
    # Dual form: cheaper when there are fewer trials than features.
    gram = xt @ xt.T + alpha * np.eye(len(xt))
    weights = xt.T @ np.linalg.solve(gram, yt)
    pred = (x_test - x_mean) @ weights + y_mean
    pred_c = pred - pred.mean(0)
    true_c = y_test - y_test.mean(0)
    denom = np.sqrt((pred_c**2).sum(0) * (true_c**2).sum(0))
    r = np.divide((pred_c * true_c).sum(0), denom, out=np.zeros(denom.shape), where=denom > 0)
    return float(np.nanmean(r))


def _analysis(sub, sessions: list[str], echo: Callable[[str], None],
              results: dict[str, object]) -> None:
    """Splits in one call, z-scoring, repeat averaging, own noise ceiling, groups, extras."""
    import importlib.util

    from laion_fmri import stats
    from laion_fmri.group import load_subjects

    x_train, x_test, t_train, t_test = sub.get_split("tau", roi="FFA1")
    echo(f"sub.get_split('tau', roi='FFA1') -> X_train {x_train.shape}, X_test {x_test.shape}; "
         f"shared images between train and test: "
         f"{len(set(t_train['label']) & set(t_test['label']))}")
    per_session = sub.get_betas(session="all", roi="face")
    betas = np.concatenate([per_session[s] for s in sessions], axis=0)
    meta = sub.metadata
    z = stats.zscore_by_session(betas, meta["session"].to_numpy())
    means, _labels, counts = stats.average_repeats(z, meta["label"].to_numpy())
    echo(f"z-scored within session, then averaged repeats: {means.shape[0]} images "
         f"(repeats per image {counts.min()}-{counts.max()})")
    own_nc = stats.noise_ceiling(betas, meta["label"].to_numpy())
    echo(f"noise ceiling of face voxels from your own subset: median {np.nanmedian(own_nc):.1f} %")
    group = load_subjects("all")
    shared = group.get_shared_betas(session="ses-01", roi="face")
    echo("group.get_shared_betas('ses-01', roi='face') -> "
         + ", ".join(f"{k}: {v.shape}" for k, v in shared.items()))
    for extra, what in (("torch", "to_torch_dataset"), ("dask", "get_betas(lazy=True)"),
                        ("xarray", "to_xarray")):
        if importlib.util.find_spec(extra) is None:
            echo(f"{what}: skipped (pip install 'laion-fmri[{extra}]')")
            continue
        if extra == "torch":
            ds = sub.to_torch_dataset(roi="face", features=("image", "CLIP"), image_size=32)
            item = ds[0]
            echo(f"to_torch_dataset: {len(ds)} items; item 0: betas {tuple(item['betas'].shape)}, "
                 f"image {tuple(item['image'].shape)}, CLIP {tuple(item['CLIP'].shape)}")
        elif extra == "dask":
            lazy = sub.get_betas(session=sessions, roi="face", lazy=True)
            echo(f"get_betas(lazy=True) -> dask {lazy.shape}, {lazy.numblocks[0]} chunks; "
                 f"equal to eager: {np.allclose(lazy.compute(), betas, equal_nan=True)}")
        else:
            da = sub.to_xarray(session="all", roi="FFA1")
            first = da.isel(trial=(da.session == "ses-01").values)
            echo(f"to_xarray -> dims {da.dims}, trials of ses-01: {first.sizes['trial']}, "
                 f"voxel coords {sorted(c for c in da.coords if da[c].dims == ('voxel',))}")
    results["n_images_averaged"] = int(means.shape[0])


def _native(sub, out: Path, echo: Callable[[str], None], results: dict[str, object]) -> None:
    """The voxel axis per brain mask, anatomy, FreeSurfer, raw runs and localizers."""
    anat, r2 = sub.get_n_voxels(), sub.get_n_voxels(mask_source="rsquare")
    echo(f"voxel axis: anatomical brain mask (default) {anat} voxels; "
         f"mask_source='rsquare' (R2mean != 0) {r2} voxels")
    both = {m: sub.get_betas(session="ses-01", roi="FFA1", mask_source=m).shape
            for m in ("anatomical", "rsquare")}
    echo(f"get_betas('ses-01', roi='FFA1', mask_source=...) -> {both}")
    t1w = sub.get_t1w()
    echo(f"get_t1w() -> {t1w.shape} (betas grid), get_t1w(res='0pt8') -> "
         f"{sub.get_t1w(res='0pt8').shape}; FreeSurfer: {sub.has_freesurfer()} "
         f"({sub.get_freesurfer_dir().name}/surf: "
         f"{len(list((sub.get_freesurfer_dir() / 'surf').iterdir()))} files)")
    if sub.has_raw("ses-01"):
        events = sub.get_events("ses-01")
        bold = sub.get_raw_bold("ses-01", run=1, echo=2)
        echo(f"get_events('ses-01') -> {len(events)} events over runs "
             f"{sorted(events['run'].unique().tolist())}; get_raw_bold('ses-01', run=1, echo=2) "
             f"-> {bold.shape} (volumes x brain voxels, streamed)")
    table = sub.get_localizers()
    echo(f"get_localizers() -> {len(table)} maps, tasks {sorted(table['task'].unique())}")
    z = sub.get_localizer("floc", "faceVsOthers")
    face = sub.get_roi_mask("face")
    echo(f"get_localizer('floc', 'faceVsOthers') -> {z.shape}; mean z in face ROIs "
         f"{np.nanmean(z[face]):.2f} vs {np.nanmean(z[~face]):.2f} elsewhere")
    results.update(n_voxels={"anatomical": anat, "rsquare": r2}, localizer_face_z=float(
        np.nanmean(z[face])))


def _surface_figure(sub, out: Path, echo: Callable[[str], None]) -> list[Path]:
    """The noise ceiling on fsaverage, when the templates extra is installed."""
    import importlib.util

    missing = [m for m in ("scipy", "nilearn", "nitransforms") if importlib.util.find_spec(m) is None]
    if missing:
        echo("noise ceiling on fsaverage: skipped (pip install 'laion-fmri[templates]')")
        return []
    from laion_fmri.plotting_surface import plot_noise_ceiling_on_fsaverage

    path = out / "noise_ceiling_fsaverage.png"
    plot_noise_ceiling_on_fsaverage(sub, session="ses-01", out=path)
    return [path]


def run_demo(out: str | os.PathLike[str] = "demo-output", scale: str = "tiny",
             echo: Callable[[str], None] = print) -> dict[str, object]:
    """Run the walk-through and return the key results (for tests).

    Parameters
    ----------
    out : str or os.PathLike
        Folder for the demo's data directory and figures.
    scale : {"tiny", "small"}
        Size of the sample dataset.
    echo : callable
        Where progress lines go.

    Returns
    -------
    dict
        Numbers the walk-through printed (shapes, scores, paths).

    Examples
    --------
    >>> results = run_demo("/tmp/laion-demo")  # doctest: +SKIP
    """
    previous = os.environ.get("TEMPLATEFLOW_HOME")
    try:
        return _walk(Path(out), scale, echo)
    finally:
        # The sample's TemplateFlow home is for the walk-through only.
        if previous is None:
            os.environ.pop("TEMPLATEFLOW_HOME", None)
        else:
            os.environ["TEMPLATEFLOW_HOME"] = previous


def _walk(out: Path, scale: str, echo: Callable[[str], None]) -> dict[str, object]:
    from laion_fmri import config, discovery, licenses, sample

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}

    _section("1. Sample dataset (the embedded default source)")
    t0 = time.perf_counter()
    source = sample.ensure_sample_dataset(scale=scale)
    echo(f"sample dataset ({scale}) at {source}  [{time.perf_counter() - t0:.1f} s]")

    data_dir = out / "data"
    data_dir.mkdir(exist_ok=True)
    os.environ["LAION_FMRI_DATA_DIR"] = str(data_dir)
    os.environ["LAION_FMRI_SOURCE"] = str(source)
    os.environ.pop("LAION_FMRI_ENDPOINT_URL", None)
    # The sample's FreeSurfer surfaces are small stand-ins: its own TemplateFlow
    # home holds the matching fsaverage spheres, used in place (nothing copied).
    os.environ["TEMPLATEFLOW_HOME"] = str(source / "templateflow")
    (data_dir / ".laion_fmri").mkdir(exist_ok=True)
    for name, (value, origin) in config.effective_settings().items():
        echo(f"  {name:13s} {value if value is not None else '(not set)'}  [{origin}]")

    _section("2. Discover")
    subjects = discovery.get_subjects()
    echo(f"get_subjects() -> {subjects}")
    echo(f"get_rois('sub-03', category='face') -> {discovery.get_rois('sub-03', category='face')}")
    discovery.describe()
    results["subjects"] = subjects

    _section("3. Download sub-03 (filtered, parallel, verified)")
    from laion_fmri.download import (
        download,
        download_captions,
        download_embeddings,
        download_raw,
        download_segmentations,
    )

    echo("The fMRI data are CC0; the demo records the license notice for its own data folder.")
    licenses.accept_dataset_license(data_dir)
    echo(">>> download(subject='sub-03', ses='ses-01', dry_run=True)")
    download(subject="sub-03", ses="ses-01", dry_run=True)
    echo(">>> download(subject='sub-03', n_jobs=4)")
    report = download(subject="sub-03", n_jobs=4)
    echo(">>> download(subject='sub-03', include_anatomical=True, include_freesurfer=True)"
         "   # anatomy and FreeSurfer scopes")
    download(subject="sub-03", n_jobs=4, include_anatomical=True, include_freesurfer=True)
    echo(">>> download_raw('sub-03', ses='ses-01', run=1)   # all echoes and parts of run 1")
    download_raw("sub-03", ses="ses-01", run=1, n_jobs=4)
    echo(">>> download(subject='sub-01', ses='ses-01', n_jobs=4)   # one session of another")
    download(subject="sub-01", ses="ses-01", n_jobs=4)
    echo(">>> download(subject='sub-03', n_jobs=4, include_anatomical=True, "
         "include_freesurfer=True)   # re-run: nothing to fetch")
    again = download(subject="sub-03", n_jobs=4, include_anatomical=True,
                     include_freesurfer=True)
    echo(f"re-run fetched {len(again.downloaded)} file(s)")
    from laion_fmri.download import verify

    echo(">>> verify(subject='sub-03')")
    echo(str(verify(subject="sub-03")))
    results["downloaded"] = report

    _section("4. Load betas")
    from laion_fmri.subject import load_subject

    sub = load_subject("sub-03")
    sessions = sub.get_sessions()
    echo(f"sessions: {sessions}; brain-mask voxels: {sub.get_n_voxels()}")
    echo(f"ROI categories: {sub.get_available_categories()}")
    echo(f"ROIs: {sub.get_available_rois()}")
    t0 = time.perf_counter()
    betas = sub.get_betas(session="ses-01")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sub.get_betas(session="ses-01")
    cached = time.perf_counter() - t0
    echo(f"get_betas('ses-01') -> {betas.shape} {betas.dtype}  first {first * 1e3:.0f} ms, "
         f"cached {cached * 1e3:.1f} ms")
    ffa = sub.get_betas(session="ses-01", roi="FFA1")
    face = sub.get_betas(session="ses-01", roi="face")
    nc = sub.get_noise_ceiling(session="ses-01")
    nc_face = sub.get_noise_ceiling(session="ses-01", roi="face")
    good = sub.get_betas(session="ses-01", nc_threshold=20)
    echo(f"roi='FFA1' -> {ffa.shape}; roi='face' (category) -> {face.shape}; "
         f"nc_threshold=20 -> {good.shape}")
    echo(f"noise ceiling (percent): median {np.nanmedian(nc_face):.1f} in face ROIs vs "
         f"{np.nanmedian(nc):.1f} over the brain")
    trials = sub.get_trial_info(session="ses-01")
    echo(f"get_trial_info('ses-01'): {len(trials)} rows, columns {list(trials.columns)}")
    echo(f"metadata: {len(sub.metadata)} trials over {len(sessions)} sessions")
    nifti_path = out / "sub-03_ses-01_nc.nii.gz"
    sub.to_nifti(nc, nifti_path)
    import nibabel as nib

    back = np.asarray(nib.load(nifti_path).dataobj).ravel()[sub.get_brain_mask()]
    echo(f"to_nifti round trip: {nifti_path.name} equal={np.allclose(back, nc, equal_nan=True)}")
    results.update(betas_shape=betas.shape, ffa_shape=ffa.shape, face_shape=face.shape)

    _section("4b. Voxel axis, anatomy, raw runs, localizers")
    _native(sub, out, echo, results)

    _section("5. Stimuli aligned to trials")
    download_embeddings(models=["CLIP"])
    download_captions()
    download_segmentations()
    from laion_fmri.download import download_stimuli

    download_stimuli(accept_terms=True)
    import laion_fmri

    with laion_fmri.load_stimuli() as stim:
        name = "shared_12rep_LAION_cluster_1003_i0.jpg"
        echo(f"{len(stim.metadata)} stimulus rows; CLIP of {name}: "
             f"{stim.embeddings.get('CLIP', name).shape}")
        echo(f"human captions: {stim.captions.human(name)}")
        echo(f"nouns: {stim.segmentations.nouns(name)}")
    first_trial = sub.metadata.iloc[0]
    img = sub.images.get(0)
    echo(f"trial 0 shows {first_trial['image_name']} ({img.size[0]}x{img.size[1]} px)")

    _section("6. Split and fit: CLIP embeddings -> betas (tau split)")
    from laion_fmri.splits import get_split_masks

    roi_betas = sub.get_betas(session="all", roi="face")
    y = np.concatenate([roi_betas[s] for s in sessions], axis=0)
    x = sub.embeddings.all("CLIP").astype(np.float64)
    train, test = get_split_masks(sub.metadata, "tau", pool="sub-03")
    shared_train, shared_test = get_split_masks(sub.metadata, "tau", pool="shared")
    echo(f"tau split (pool sub-03): {train.sum()} train / {test.sum()} test trials; "
         f"(pool shared: {shared_train.sum()} / {shared_test.sum()})")
    y = np.nan_to_num(y)
    score = _ridge_score(x[train], y[train], x[test], y[test])
    rng = np.random.default_rng(0)
    shuffled = _ridge_score(x[train][rng.permutation(train.sum())], y[train], x[test], y[test])
    echo(f"mean test r over face voxels: aligned {score:.3f} vs shuffled {shuffled:.3f}")
    results.update(score=score, shuffled=shuffled)

    _section("7. Analysis helpers")
    _analysis(sub, sessions, echo, results)

    _section("8. Figures")
    from laion_fmri import plotting

    nc_png = out / "noise_ceiling.png"
    plotting.plot_map(sub, nc, title="sub-03 ses-01 noise ceiling (%), face ROIs outlined",
                      outline="face", out=nc_png)
    rois_png = out / "rois.png"
    plotting.plot_rois(sub, out=rois_png)
    trial_png = out / "trial_0.png"
    plotting.plot_trial(sub, 0, roi="face", out=trial_png)
    figures = [nc_png, rois_png, trial_png, *_surface_figure(sub, out, echo)]
    for path in figures:
        echo(f"wrote {path}")
    results["figures"] = figures
    _section("done")
    return results


__all__ = [
    "run_demo",
]
