"""Stimuli by image name (the hub) and by trial (aligned with the betas).

Assumes ``02_download.py`` ran (embeddings, captions, segmentations and the
images, which need the data-use agreement).
"""

import numpy as np

import laion_fmri
from laion_fmri.subject import load_subject

# --- the stimulus hub: one row per image, looked up by name ---------------------------
with laion_fmri.load_stimuli() as stim:  # lazy: files open on first use, close on exit
    print(f"{len(stim.metadata)} images;", stim.metadata.columns.tolist())
    name = "shared_12rep_LAION_cluster_1003_i0.jpg"
    print("CLIP embedding:", stim.embeddings.get("CLIP", name).shape)
    print("models:", stim.embeddings.models)
    print("human captions:", stim.captions.human(name)[:2])
    print("AI caption:", stim.captions.ai(name))
    print("nouns:", stim.segmentations.nouns(name))
    image = stim.images.get(name)  # PIL.Image
    print("image:", image.size, image.mode)
    small = stim.images.array([name], size=64)  # uint8 (n, 64, 64, 3), fast downscaled decode
    print("downscaled batch:", small.shape, small.dtype)

# --- the same modalities by global trial index, aligned with sub.metadata ---------------
sub = load_subject("sub-03")
trials = sub.metadata  # one row per trial over all downloaded sessions
print(trials[["session", "run", "label", "unique_or_shared", "dataset"]].head(3).to_string())

betas = sub.get_betas(session="ses-01", roi="face")
X = sub.embeddings.all("CLIP", session="ses-01")  # rows line up with `betas`
print(f"betas {betas.shape} <-> CLIP {X.shape}")
assert len(X) == len(betas)

i = int(np.flatnonzero(trials["session"] == "ses-01")[0])  # first trial of ses-01
print(f"trial {i}: {trials.loc[i, 'label']}")
print("  image:", sub.images.get(i).size)
print("  captions:", sub.captions.human(i)[:1])
print("  CLIP:", sub.embeddings.get("CLIP", i).shape)
