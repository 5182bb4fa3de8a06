"""Apply the published re:vision train/test splits to a subject's trials.

Assumes ``02_download.py`` ran. The split lists ship with the package, so no
download is needed for them.
"""

import numpy as np
import pandas as pd

from laion_fmri.splits import get_split_masks, list_ood_types, list_pools, list_splits, load_split
from laion_fmri.subject import load_subject

print("pools:", list_pools())
print("splits:", list_splits())
print("OOD types:", list_ood_types())
tau = load_split("tau", pool="shared")
print(f"tau/shared: {tau.n_train} train and {tau.n_test} test images in the published list")

# --- masks over your own trial table (the product-page recipe) ----------------------------
sub = load_subject("sub-03")
sessions = sub.get_sessions()
betas_per_session = sub.get_betas(session=sessions, roi="face")
trials_per_session = sub.get_trial_info(session=sessions)
betas = np.concatenate(list(betas_per_session.values()), axis=0)
trials = pd.concat(list(trials_per_session.values()), ignore_index=True)

for name in ["random_0", "tau", "cluster_k5_0"]:
    train_mask, test_mask = get_split_masks(trials, name, pool="shared")
    shared_images = set(trials.label[train_mask]) & set(trials.label[test_mask])
    print(f"{name:13s} train {train_mask.sum():4d} trials, test {test_mask.sum():4d}, "
          f"images in both: {len(shared_images)}")

# Method 3: train on the pool, test on out-of-distribution images (optionally by type).
train_mask, test_mask = get_split_masks(trials, "ood", pool="shared", ood_types=list_ood_types()[:2])
X_train, X_test = betas[train_mask], betas[test_mask]
print(f"ood: X_train {X_train.shape}, X_test {X_test.shape}")

# --- or in one call on the subject: betas and trial tables, already split -----------------
X_train, X_test, trials_train, trials_test = sub.get_split("tau", pool="shared", roi="face")
print(f"sub.get_split('tau'): {X_train.shape} / {X_test.shape}")
