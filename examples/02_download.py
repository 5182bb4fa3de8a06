"""Download a subject: dry run, filtered download, idempotent re-run, verify, stimuli.

Assumes ``01_configure_and_discover.py`` ran (a data directory and a source
are configured). Downloads are atomic, resumable and verified: interrupt this
script at any point and run it again; it continues where it stopped.
"""

from laion_fmri.config import get_data_dir
from laion_fmri.download import (
    download,
    download_captions,
    download_embeddings,
    download_segmentations,
    download_stimuli,
    verify,
)
from laion_fmri.licenses import accept_dataset_license

data_dir = get_data_dir()

# The fMRI data are CC0; the notice is shown once per data directory. A script
# records the acceptance itself (or run `laion-fmri accept-license` once).
accept_dataset_license(data_dir)

# --- plan first: what would one session cost? ---------------------------------------
plan = download(subject="sub-03", ses="ses-01", dry_run=True)
print(f"dry run: {plan}")  # e.g. "21 file(s), 1.1 MB"; nothing written yet
for key in plan.keys[:5]:
    print("  would fetch", key)

# --- one session, then everything else of the subject ------------------------------
# Each call prints a one-line summary and returns a report object.
report = download(subject="sub-03", ses="ses-01", n_jobs=4)
print(f"first run: {len(report.downloaded)} downloaded, {report.bytes} bytes, ok={report.ok}")

again = download(subject="sub-03", ses="ses-01", n_jobs=4)
print(f"re-run: {len(again.downloaded)} downloaded, {len(again.skipped)} already up to date")

report = download(subject="sub-03", n_jobs=4)  # all public sessions; held-out ones are skipped
print(f"whole subject: {len(report.downloaded)} more file(s), held-out skipped: {len(report.held_out)}")

# Only the subject-level maps (noise ceilings over sessions, R2mean):
download(subject="sub-03", ses="averages")

# --- check the bytes on disk against the manifest ------------------------------------
print(verify(subject="sub-03"))  # `laion-fmri verify --repair` re-fetches anything damaged

# --- stimulus files -------------------------------------------------------------------
download_embeddings()  # CLIP, DINOv2, PEcore, SigLIP2 (CC0); or download_embeddings(["CLIP"])
download_captions()
download_segmentations()
# Raw images need the data-use agreement: on a terminal this call shows it and
# asks once; without a terminal it fails fast naming `laion-fmri request-access`.
paths = download_stimuli()
print("images:", sorted(paths))
