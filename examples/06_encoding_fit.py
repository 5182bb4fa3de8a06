"""A quick encoding model: CLIP embeddings -> single-trial betas, on the ``tau`` split.

Assumes ``02_download.py`` ran. Ridge regression in closed form with numpy;
the same fit on shuffled embeddings is the chance level. Ends with the same
data as a PyTorch dataset (if the ``torch`` extra is installed).
"""

import importlib.util
import os
from pathlib import Path

import numpy as np

from laion_fmri.stats import noise_ceiling, zscore_by_session
from laion_fmri.subject import load_subject

out = Path(os.environ.get("LAION_FMRI_EXAMPLES_OUT", "examples-output"))
out.mkdir(parents=True, exist_ok=True)


def ridge_predict(x_train, y_train, x_test, alpha=10.0):
    """Closed-form ridge (dual form: cheap when trials < features)."""
    x_mean, y_mean = x_train.mean(0), y_train.mean(0)
    xc = x_train - x_mean
    weights = xc.T @ np.linalg.solve(xc @ xc.T + alpha * np.eye(len(xc)), y_train - y_mean)
    return (x_test - x_mean) @ weights + y_mean


def columnwise_r(a, b):
    """Pearson correlation of each column of ``a`` with the same column of ``b``."""
    a, b = a - a.mean(0), b - b.mean(0)
    denom = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    return np.divide((a * b).sum(0), denom, out=np.zeros(a.shape[1]), where=denom > 0)


sub = load_subject("sub-03")

# Betas and trial tables, already split (pool=None: the subject's own pool).
X_train, X_test, trials_train, trials_test = sub.get_split("tau", session="all")
# Features row-aligned with the betas through the global trial index.
F_train = sub.embeddings.get("CLIP", trials_train.index.to_numpy(), dtype=np.float32)
F_test = sub.embeddings.get("CLIP", trials_test.index.to_numpy(), dtype=np.float32)
print(f"train: betas {X_train.shape}, CLIP {F_train.shape}; test: betas {X_test.shape}")

# GLMsingle betas are ridge-shrunk per session: z-score within session first.
Y_train = zscore_by_session(X_train, trials_train["session"].to_numpy())
Y_test = zscore_by_session(X_test, trials_test["session"].to_numpy())

r = columnwise_r(ridge_predict(F_train, Y_train, F_test), Y_test)
rng = np.random.default_rng(0)
r_shuffled = columnwise_r(ridge_predict(F_train[rng.permutation(len(F_train))], Y_train, F_test), Y_test)

face = sub.get_roi_mask("face")  # boolean over brain-mask voxels
print(f"mean test r, face ROIs: {r[face].mean():.3f} (shuffled embeddings: {r_shuffled[face].mean():.3f})")
print(f"mean test r, whole brain: {r.mean():.3f} (shuffled: {r_shuffled.mean():.3f})")
np.save(out / "encoding_scores.npy", r.astype(np.float32))

# How much of that is explainable? The noise ceiling of the face voxels, from the data.
meta = sub.metadata
betas_face = np.concatenate(list(sub.get_betas(session="all", roi="face").values()))
# runs=<session of each trial>: z-score within session, as the subject-level NC maps do.
nc = noise_ceiling(betas_face, meta["label"].to_numpy(), runs=meta["session"].to_numpy())
print(f"face voxels: median noise ceiling {np.nanmedian(nc):.1f} %")

# --- the same data as a PyTorch dataset -----------------------------------------------------
if importlib.util.find_spec("torch") is not None:
    from torch.utils.data import DataLoader

    dataset = sub.to_torch_dataset(session="ses-01", roi="face", features=("CLIP",))
    batch = next(iter(DataLoader(dataset, batch_size=8)))
    print("torch batch:", {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")})
else:
    print("torch not installed: pip install 'laion-fmri[torch]' for sub.to_torch_dataset()")
