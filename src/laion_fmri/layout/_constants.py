"""Fixed names of the bucket: roots, task/space entities, stimulus keys, table columns."""

from __future__ import annotations

BUCKET = "laion-fmri"
REGION = "us-west-2"


TASK = "images"
SPACE = "T1w"
RES = "1pt8"

DATASET_LEVEL_KEYS: tuple[str, ...] = (
    "dataset_description.json",
    "participants.tsv",
    "participants.json",
    "README",
)

GLM_ROOT = "derivatives/glmsingle-tedana"
ROI_ROOT = "derivatives/rois"
SNAPSHOT_ROI_ROOT = "derivatives/atlases"
STIMULI_ROOT = "stimuli"


STIMULI_IMAGES_KEY = f"{STIMULI_ROOT}/task-{TASK}_stimuli.h5"
STIMULI_METADATA_KEY = f"{STIMULI_ROOT}/task-{TASK}_metadata.csv"
SEGMENTATIONS_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-segmentations.h5"
SEGMENTATIONS_METADATA_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-segmentations_metadata.csv"
CAPTIONS_KEY = f"{STIMULI_ROOT}/task-{TASK}_desc-captions.csv"
# Raw images and their metadata are gated by the data-use agreement.
GATED_STIMULUS_KEYS: tuple[str, ...] = (STIMULI_IMAGES_KEY, STIMULI_METADATA_KEY)

# HDF5 dataset names inside the stimulus files.
H5_IMAGES = "images"
H5_EMBEDDING = "embedding"
H5_IMAGE_IDS = "image_ids"
H5_VALID = "valid"
H5_MASKS = "masks"

TRIAL_COLUMNS: tuple[str, ...] = ("session", "run", "beta_index", "label")
STIMULUS_METADATA_COLUMNS: tuple[str, ...] = (
    "image_name",
    "dataset",
    "participant",
    "unique_or_shared",
    "n_reps",
)
CAPTION_COLUMNS: tuple[str, ...] = (
    "image_name",
    "caption_idx",
    "source",
    "caption",
    "origin_collection",
    "participant_id",
    "ai_model",
)
SEGMENTATION_COLUMNS: tuple[str, ...] = (
    "mask_row",
    "image_name",
    "noun",
    "instance_id",
    "score",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "localized",
    "mask_file",
)

ROI_CATEGORIES: tuple[str, ...] = (
    "body",
    "character",
    "face",
    "laion",
    "motion",
    "object",
    "place",
    "retinotopy",
)
SNAPSHOT_ROI_CATEGORY = "uncategorized"
HEMIS: tuple[str, ...] = ("L", "R")

# Local state under <data_dir>/.laion_fmri/
STATE_DIRNAME = ".laion_fmri"


__all__ = [
    "BUCKET",
    "CAPTIONS_KEY",
    "CAPTION_COLUMNS",
    "DATASET_LEVEL_KEYS",
    "GATED_STIMULUS_KEYS",
    "GLM_ROOT",
    "H5_EMBEDDING",
    "H5_IMAGES",
    "H5_IMAGE_IDS",
    "H5_MASKS",
    "H5_VALID",
    "HEMIS",
    "REGION",
    "RES",
    "ROI_CATEGORIES",
    "ROI_ROOT",
    "SEGMENTATIONS_KEY",
    "SEGMENTATIONS_METADATA_KEY",
    "SEGMENTATION_COLUMNS",
    "SNAPSHOT_ROI_CATEGORY",
    "SNAPSHOT_ROI_ROOT",
    "SPACE",
    "STATE_DIRNAME",
    "STIMULI_IMAGES_KEY",
    "STIMULI_METADATA_KEY",
    "STIMULI_ROOT",
    "STIMULUS_METADATA_COLUMNS",
    "TASK",
    "TRIAL_COLUMNS",
]
