"""Safe local paths: each hostile key fails alone, nothing is written outside the data dir.

A bucket of its own on the loopback S3 server holds the tiny sample's sub-03
plus hostile keys: names that collide after case folding or label
de-hyphenation, names ending in the engine's reserved suffixes, a name too
long once ``.part.json`` is added. Then: a planted symlink as state file, a
file where a folder should be, a tampered manifest path, a damaged resume
record, and a subject that exists only in the source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from laion_fmri import layout
from laion_fmri.download import download, verify
from laion_fmri.download.manifest import Manifest
from laion_fmri.download.transfer import fetch_objects
from laion_fmri.licenses import accept_dataset_license
from laion_fmri.stores import S3Store

BUCKET = "laion-fmri-paths-tests"
SUB = "sub-03"
FUNC = layout.session_func_prefix(SUB, "ses-01")
CASE_A = FUNC + "sub-03_ses-01_task-images_desc-Case_statmap.json"
CASE_B = FUNC + "sub-03_ses-01_task-images_desc-CASE_statmap.json"
LABEL_A = FUNC + "sub-03_ses-01_task-images_label-AB-1_statmap.json"
LABEL_B = FUNC + "sub-03_ses-01_task-images_label-AB1_statmap.json"
RESERVED = FUNC + "sub-03_ses-01_task-images_desc-Evil_statmap.json.part"
RESERVED_STATE = FUNC + "sub-03_ses-01_task-images_desc-Evil2_statmap.json.part.json"
LONG = FUNC + "sub-03_ses-01_task-images_desc-" + "L" * 205 + "_statmap.json"
HOSTILE = (CASE_A, CASE_B, LABEL_A, LABEL_B, RESERVED, RESERVED_STATE, LONG)


@pytest.fixture(scope="module")
def hostile_bucket(s3_server, sample_root: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    client = s3_server.client
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    keys = []
    for path in sorted(sample_root.rglob("*")):
        key = path.relative_to(sample_root).as_posix()
        if path.is_file() and not key.startswith(layout.STATE_DIRNAME) and "/ses-31/" not in key:
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), ACL="public-read")
            keys.append(key)
            if SUB in key.split("/"):  # the same files for a subject the code never heard of
                twin = key.replace("sub-03", "sub-42")
                client.put_object(Bucket=BUCKET, Key=twin, Body=path.read_bytes(), ACL="public-read")
                keys.append(twin)
    for key in HOSTILE:
        client.put_object(Bucket=BUCKET, Key=key, Body=b'{"x": 1}', ACL="public-read")
        keys.append(key)
    yield client
    for key in keys:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def source(hostile_bucket, s3_server, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LAION_FMRI_SOURCE", f"s3://{BUCKET}")
    monkeypatch.setenv("LAION_FMRI_ENDPOINT_URL", s3_server.endpoint_url)
    accept_dataset_license(data_dir)
    return data_dir


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and layout.STATE_DIRNAME not in p.parts}


def test_each_hostile_key_fails_alone(source: Path, tmp_path: Path) -> None:
    before = _files(tmp_path)
    with pytest.warns(UserWarning):
        report = download(subject=SUB, ses="ses-01", data_dir=source, progress=False)
    assert set(report.failed) == set(HOSTILE)
    for a, b in ((CASE_A, CASE_B), (LABEL_A, LABEL_B)):
        assert a in report.failed[a] and b in report.failed[a]  # both keys named
    assert "reserves" in report.failed[RESERVED] and "reserves" in report.failed[RESERVED_STATE]
    assert "too long" in report.failed[LONG]
    assert len(report.downloaded) > 10
    for key in report.downloaded:
        assert layout.local_path(source, key).is_file()
    on_disk = _files(source)
    assert not any("Case" in f or "CASE" in f or "AB1" in f or "Evil" in f or "LLLL" in f
                   for f in on_disk)
    assert _files(tmp_path) - before - {f"data/{f}" for f in on_disk} == set()  # nothing elsewhere


def test_symlinked_state_files_are_never_followed(source: Path, tmp_path: Path) -> None:
    store = S3Store(BUCKET, endpoint_url=str(__import__("os").environ["LAION_FMRI_ENDPOINT_URL"]))
    key = next(o.key for o in store.list(FUNC) if o.key.endswith("SingletrialBetas_statmap.nii.gz"))
    target = layout.local_path(source, key)
    target.parent.mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    layout.partial_state_path(target).symlink_to(outside)
    layout.partial_path(target).symlink_to(outside)
    report = fetch_objects([store.head(key)], store, source, progress=False, part_size=64 * 1024,
                           chunk_size=16 * 1024)
    assert report.downloaded == [key]
    assert outside.read_text() == "keep me"
    assert target.is_file() and not target.is_symlink()


def test_a_file_where_a_folder_should_be_fails_only_its_keys(source: Path) -> None:
    blocker = source / layout.roi_prefix(SUB) / "face"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning):
        report = download(subject=SUB, ses="ses-01", data_dir=source, progress=False)
    blocked = {k for k in report.failed if k not in HOSTILE}
    assert blocked and all("/face/" in k for k in blocked)
    assert any("/place/" in k for k in report.downloaded)
    assert blocker.read_text() == "not a folder"


def test_tampered_manifest_path_is_never_used(source: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        report = download(subject=SUB, ses="ses-01", data_dir=source, progress=False)
    key = next(k for k in report.downloaded if k.endswith("_trials.tsv"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    db = sqlite3.connect(layout.manifest_path(source))
    db.execute("UPDATE files SET path = ? WHERE key = ?", ("../victim.txt", key))
    db.commit()
    db.close()
    path = layout.local_path(source, key)
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    result = verify(subject=SUB, repair=True, data_dir=source)
    assert result.altered == [key] and result.repaired == [key]
    assert victim.read_text() == "precious"


def test_damaged_resume_record_is_ignored(source: Path) -> None:
    store = S3Store(BUCKET, endpoint_url=str(__import__("os").environ["LAION_FMRI_ENDPOINT_URL"]))
    key = next(o.key for o in store.list(FUNC) if o.key.endswith("SingletrialBetas_statmap.nii.gz"))
    target = layout.local_path(source, key)
    target.parent.mkdir(parents=True)
    layout.partial_path(target).write_bytes(b"\0" * store.head(key).size)
    layout.partial_state_path(target).write_text("[" * 100_000 + "]" * 100_000)  # deep nesting
    report = fetch_objects([store.head(key)], store, source, progress=False, part_size=64 * 1024)
    assert report.downloaded == [key] and not report.failed
    with Manifest(source) as m:
        assert m.get(key)["size"] == target.stat().st_size  # type: ignore[index]


def test_subject_known_only_to_the_source_downloads_and_loads(source: Path) -> None:
    from laion_fmri.discovery import get_subjects

    assert "sub-42" in get_subjects()
    report = download(subject="sub-42", ses="ses-01", data_dir=source, progress=False)
    assert report.ok and any("/sub-42/" in k for k in report.downloaded)
    from laion_fmri import load_subject

    sub = load_subject("sub-42", data_dir=source)
    betas = sub.get_betas(session="ses-01", roi="FFA1")
    assert betas.shape[0] > 0


def test_unknown_subject_names_the_listed_ones(source: Path) -> None:
    from laion_fmri.errors import SubjectNotFoundError

    with pytest.raises(SubjectNotFoundError, match="sub-42"):
        download(subject="sub-77", data_dir=source, progress=False)
