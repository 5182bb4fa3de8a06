"""Load single-trial betas: ROIs and categories, masks, noise ceilings, the cache, lazy arrays.

Assumes ``02_download.py`` ran. All shapes are ``(n_trials, n_voxels)``,
float32; voxels are brain-mask voxels in C order of the ``(x, y, z)`` grid
(the anatomical brain mask by default, ``mask_source="rsquare"`` for R2mean != 0).
"""

import time

import numpy as np

from laion_fmri.stats import average_repeats, zscore_by_session
from laion_fmri.subject import load_subject

sub = load_subject("sub-03")  # also "03" or 3
print(sub)
print("sessions:", sub.get_sessions())
print("categories:", sub.get_available_categories())
print("ROIs:", sub.get_available_rois())
print("brain-mask voxels:", sub.get_n_voxels())
# The voxel axis is the anatomical brain mask (as in the reference release and its
# published baselines); mask_source="rsquare" uses the voxels with a GLM fit
# (R2mean != 0) instead, on every voxel-axis call.
print("R2mean != 0 voxels:", sub.get_n_voxels(mask_source="rsquare"))

# --- whole brain, then subsets -----------------------------------------------------
t0 = time.perf_counter()
betas = sub.get_betas(session="ses-01")  # first call decodes the .nii.gz and writes the cache
t1 = time.perf_counter()
sub.get_betas(session="ses-01")  # later calls memory-map the cache
t2 = time.perf_counter()
print(f"ses-01 betas {betas.shape} {betas.dtype}: first load {t1 - t0:.3f} s, cached {t2 - t1:.3f} s")

ffa = sub.get_betas(session="ses-01", roi="FFA1")  # one ROI
face = sub.get_betas(session="ses-01", roi="face")  # a category = union of its ROIs
both = sub.get_betas(session="ses-01", roi=["FFA1", "PPA"])  # a list = union
print(f"FFA1 {ffa.shape}, face {face.shape}, FFA1+PPA {both.shape}")

# Your own voxel selection: a boolean mask over the brain-mask voxels.
mask = np.zeros(sub.get_n_voxels(), dtype=bool)
mask[::10] = True
print("every 10th voxel:", sub.get_betas(session="ses-01", mask=mask).shape)

# --- noise ceilings (percent, 0-100) -----------------------------------------------
nc = sub.get_noise_ceiling(session="ses-01")
nc_12 = sub.get_noise_ceiling(desc="Noiseceiling12rep")
print(f"noise ceiling ses-01: median {np.nanmedian(nc):.1f} %, 12-rep map max {np.nanmax(nc_12):.1f} %")
good = sub.get_betas(session="ses-01", nc_threshold=20)  # voxels with NC >= 20 %
print(f"voxels with NC >= 20 %: {good.shape[1]} of {betas.shape[1]}")

# --- several sessions, trial tables, repeats ---------------------------------------
sessions = sub.get_sessions()
per_session = sub.get_betas(session=sessions, roi="face")  # {session: array}
trials = sub.get_trial_info(session="ses-01")
print(trials.head(3).to_string())
meta = sub.metadata  # every session's trials, rows line up with the stacked betas
stacked = np.concatenate([per_session[s] for s in sessions])
assert len(meta) == len(stacked)

z = zscore_by_session(stacked, meta["session"].to_numpy())  # GLMsingle betas: z-score first
means, labels, counts = average_repeats(z, meta["label"].to_numpy())
print(f"{len(meta)} trials -> {len(labels)} images (max {counts.max()} repeats)")
per_image = sub.get_betas(session="ses-01", roi="face", average="label")
print("ses-01 averaged over repeats:", per_image.shape)

# --- back to the brain grid ------------------------------------------------------------
coords = sub.get_voxel_coordinates(roi="FFA1")  # scanner mm, (n, 3)
print("FFA1 centre (mm):", coords.mean(axis=0).round(1))

# --- out of core: a dask array, one chunk per session (needs the `dask` extra) ----------
try:
    lazy = sub.get_betas(session=sessions, roi="face", lazy=True)
except ImportError as exc:  # MissingDependencyError names the extra to install
    print("lazy loading skipped:", exc)
else:
    print(f"lazy {lazy.shape}, {lazy.numblocks[0]} chunks; mean = {float(lazy.mean().compute()):.4f}")
