"""Figures: a noise-ceiling map, ROI outlines, one trial, and the encoding scores.

Assumes ``02_download.py`` ran (and ``06_encoding_fit.py`` for the scores
map). PNGs go to ``$LAION_FMRI_EXAMPLES_OUT`` (default ``examples-output/``);
the documentation shows them.
"""

import os
from pathlib import Path

import matplotlib
import numpy as np

from laion_fmri.plotting import plot_map, plot_rois, plot_trial
from laion_fmri.subject import load_subject

matplotlib.use("Agg")  # render to files; no display needed

out = Path(os.environ.get("LAION_FMRI_EXAMPLES_OUT", "examples-output"))
out.mkdir(parents=True, exist_ok=True)
sub = load_subject("sub-03")

fig = plot_map(sub, sub.get_noise_ceiling(session="ses-01"), title="sub-03 ses-01 noise ceiling (%)")
fig.savefig(out / "noise_ceiling.png", dpi=100)

fig = plot_rois(sub, category="face")
fig.savefig(out / "rois.png", dpi=100)

first_trial = int(sub.metadata.index[0])
fig = plot_trial(sub, first_trial, roi="face")
fig.savefig(out / "trial.png", dpi=100)

scores = out / "encoding_scores.npy"
if scores.is_file():  # written by 06_encoding_fit.py
    fig = plot_map(sub, np.load(scores), title="CLIP encoding model: test r")
    fig.savefig(out / "encoding_scores.png", dpi=100)

for png in sorted(out.glob("*.png")):
    print("wrote", png)
