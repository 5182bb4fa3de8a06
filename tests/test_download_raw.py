"""Raw BIDS data (``datatype=``) through real HTTP, from a bucket that has a raw tree.

The sample dataset carries derivatives only, so this test puts a small raw
tree (anat, func, fmap, dwi) next to it in its own bucket on the loopback
S3 server.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download import download
from laion_fmri.licenses import accept_dataset_license

BUCKET = "laion-fmri-raw"
SUB = "sub-03"
RAW = {
    f"{SUB}/ses-01/anat/{SUB}_ses-01_acq-MEGRE_echo-1_part-mag_MEGRE.nii.gz": 3000,
    f"{SUB}/ses-01/func/{SUB}_ses-01_task-images_run-01_echo-1_part-mag_bold.nii.gz": 5000,
    f"{SUB}/ses-01/func/{SUB}_ses-01_task-images_run-01_events.tsv": 400,
    f"{SUB}/ses-01/fmap/{SUB}_ses-01_dir-AP_epi.nii.gz": 2000,
    f"{SUB}/dwi/{SUB}_dwi.nii.gz": 4000,
}


def _body(key: str, size: int) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@pytest.fixture
def raw_source(s3_server, sample_root: Path, monkeypatch):  # type: ignore[no-untyped-def]
    client = s3_server.client
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    keys = [*layout.DATASET_LEVEL_KEYS, layout.r2mean_key(SUB)]
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=(sample_root / key).read_bytes(),
                          ACL="public-read")
    for key, size in RAW.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=_body(key, size), ACL="public-read")
    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{BUCKET}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", s3_server.endpoint_url)
    yield
    for key in [*keys, *RAW]:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


@pytest.mark.parametrize("datatype", ["anat", "func", "fmap", "dwi"])
def test_datatype_fetches_exactly_that_raw_data(raw_source, data_dir: Path, datatype: str) -> None:  # type: ignore[no-untyped-def]
    accept_dataset_license(data_dir)
    report = download(subject=SUB, datatype=datatype, progress=False)
    wanted = {k for k in RAW if f"/{datatype}/" in f"/{k}"}
    got_raw = {k for k in report.downloaded if k.startswith(f"{SUB}/")}
    assert got_raw == wanted
    for key in wanted:
        assert (data_dir / key).read_bytes() == _body(key, RAW[key])
    # Nothing of the other datatypes was written.
    others = {k for k in RAW if k not in wanted}
    assert not any((data_dir / k).exists() for k in others)
