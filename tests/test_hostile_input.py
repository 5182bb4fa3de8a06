"""Hostile and malformed input: escaping keys, crafted NIfTI/HDF5/TSV/CSV files.

Every case must end in one of our documented exceptions with a message that
names the offending key or file, never in a crash deep inside numpy, never
in a write outside the data directory, and never in a multi-GB allocation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from faults.helpers import BETAS_KEY, SES, SUB, accept_license, verify_keys
from faults.record import record
from hostile.crafted import BETAS_CASE_NAMES, craft_betas
from laion_fmri import layout
from laion_fmri.errors import CorruptFileError, UnsafeKeyError

pytestmark = pytest.mark.timeout(120)


def _tried(request: pytest.FixtureRequest, n: int = 1, **extra: object) -> None:
    record("hostile", request.node.nodeid, inputs=n, **extra)


# --------------------------------------------------------------------------- keys
UNSAFE_KEYS = [
    "../escape.txt",
    "a/../../escape.txt",
    "derivatives/../../escape.txt",
    "/etc/passwd",
    "/abs/evil.txt",
    "C:/Windows/evil.txt",
    "c:evil.txt",
    "a\\..\\..\\evil.txt",
    "..\\evil.txt",
    "a/b\x00.txt",
    "\x00",
    "a/\nb.txt",
    "a/b\x7f.txt",
    "a//b.txt",
    "./a.txt",
    "a/./b.txt",
    "a/",
    "",
    "x" * 256,
    "a/" + "y" * 300,
    "d/" * 600 + "z.txt",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS, ids=lambda k: repr(k[:24]))
def test_unsafe_key_is_refused(key: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with pytest.raises(UnsafeKeyError, match="Refusing"):
        layout.local_path(tmp_path, key)
    with pytest.raises(UnsafeKeyError):
        layout.check_key(key)
    _tried(request)


def test_safe_odd_keys_stay_inside(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    odd = ["%2e%2e/enc.txt", "a/%2F/b.txt", "sp ace.txt", "ü/ñ.txt", "a/C:/x.txt", "...", "a/..b", "-rf"]
    root = tmp_path.resolve()
    for key in odd:
        path = layout.local_path(tmp_path, key)
        assert root in path.parents
    _tried(request, len(odd))


def _put_hostile(s3_server, prefix: str, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    keys = [prefix + n for n in names]
    for key in keys:
        s3_server.put(key, b"hostile payload")
    return keys


def _outside_snapshot(tmp_path: Path, data_dir: Path) -> dict[str, int]:
    out = {}
    for p in tmp_path.rglob("*"):
        if data_dir in p.parents or p == data_dir:
            continue
        if p.is_file():
            out[str(p)] = p.stat().st_size
    return out


def test_listing_with_backslash_and_long_keys(s3_server, s3_source, data_dir, sample_root, tmp_path, request):  # type: ignore[no-untyped-def]
    """Keys the S3 client accepts but a local path must not: refused one by one."""
    from laion_fmri.download import download
    from laion_fmri.download.transfer import fetch_objects
    from laion_fmri.remote import open_store

    prefix = layout.session_func_prefix(SUB, SES)
    names = ["..\\..\\..\\evil.txt", "a\\b.txt", "n" * 300 + ".txt"]
    keys = _put_hostile(s3_server, prefix, names)
    try:
        accept_license(data_dir)
        outside = _outside_snapshot(tmp_path, data_dir)
        store = open_store()
        listed = list(store.list(prefix))
        assert set(keys) <= {o.key for o in listed}
        report = fetch_objects(listed, store, data_dir, progress=False)
        for key in keys:
            assert "Refusing remote key" in report.failed[key]
        real = [o.key for o in listed if o.key not in keys]
        assert sorted(report.downloaded) == sorted(real)
        verify_keys(data_dir, sample_root, real)
        # The public entry point copes as well: the hostile keys never land.
        result = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
        assert not set(keys) & set(result.downloaded)
        assert _outside_snapshot(tmp_path, data_dir) == outside
        assert not any("evil" in p.name or p.name.startswith("nnnn") for p in tmp_path.rglob("*"))
    finally:
        for key in keys:
            s3_server.delete(key)
    _tried(request, len(keys))


@pytest.mark.parametrize("name", ["../../../../../escape_marker.txt", "./dot.txt", "a//b.txt"])
def test_listing_with_traversal_key_fails_closed(s3_server, s3_source, data_dir, tmp_path, name, request):  # type: ignore[no-untyped-def]
    """``..``/``.``/empty segments: that key fails alone (the listing page the client
    library rejects is listed tolerantly), the rest completes, nothing lands outside."""
    from laion_fmri.download import download

    prefix = layout.session_func_prefix(SUB, SES)
    (key,) = _put_hostile(s3_server, prefix, [name])
    try:
        accept_license(data_dir)
        outside = _outside_snapshot(tmp_path, data_dir)
        with pytest.warns(UserWarning, match="Refusing"):
            report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
        assert list(report.failed) == [key] and "Refusing" in report.failed[key]
        assert report.downloaded and all(layout.local_path(data_dir, k).is_file()
                                         for k in report.downloaded)
        assert _outside_snapshot(tmp_path, data_dir) == outside
        assert not list(tmp_path.parent.glob("escape_marker.txt"))
        assert not Path(os.path.normpath(data_dir / key)).exists()
    finally:
        s3_server.delete(key)
    _tried(request)


def test_symlinked_folder_in_data_dir_is_not_followed_out(s3_source, data_dir, tmp_path, request):  # type: ignore[no-untyped-def]
    """A data-dir folder that is a symlink to elsewhere: keys under it are refused."""
    from laion_fmri.download import download

    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "derivatives").symlink_to(outside, target_is_directory=True)
    accept_license(data_dir)
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed and all(k.startswith("derivatives/") for k in report.failed)
    assert all("outside" in reason for reason in report.failed.values())
    assert list(outside.rglob("*")) == []
    _tried(request)


def test_symlinked_part_file_does_not_write_outside(s3_source, data_dir, tmp_path, sample_root, request):  # type: ignore[no-untyped-def]
    """A planted ``<name>.part`` symlink must not redirect the download's bytes."""
    from laion_fmri.download import download

    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    target = layout.local_path(data_dir, BETAS_KEY)
    target.parent.mkdir(parents=True)
    layout.partial_path(target).symlink_to(victim)
    accept_license(data_dir)
    report = download(subject=SUB, ses=SES, progress=False, data_dir=data_dir)
    assert report.failed == {}
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink()
    verify_keys(data_dir, sample_root, [BETAS_KEY])
    _tried(request)


# --------------------------------------------------------------------------- crafted NIfTI
@pytest.fixture(scope="module")
def crafted(sample_root: Path) -> dict[str, bytes]:
    return craft_betas(sample_root, BETAS_KEY)


CRAFTED_NAMES = BETAS_CASE_NAMES


@pytest.mark.parametrize("case", CRAFTED_NAMES)
@pytest.mark.parametrize("use_cache", [False, True])
def test_crafted_betas_raise_corrupt_file(case, use_cache, crafted, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    path = layout.local_path(downloaded, BETAS_KEY)
    path.write_bytes(crafted[case])
    sub = load_subject(SUB, data_dir=downloaded)
    with pytest.raises(CorruptFileError) as info:
        sub.get_betas(SES, cache=use_cache)
    assert str(path) in str(info.value)
    assert not _cache_files(downloaded)  # nothing decoded from a bad file was kept
    _tried(request)


def _cache_files(root: Path) -> list[Path]:
    # Betas entries only: the brain-mask index next to them comes from the (valid) mask.
    return [p for p in layout.cache_dir(root).rglob("*_betas.npy")] if layout.cache_dir(root).exists() else []


@pytest.mark.parametrize("case", ["dims_absurd", "grid_mismatch", "garbage", "vox_offset_nan", "empty"])
def test_crafted_brain_mask_raises_corrupt_file(case, crafted, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    path = layout.local_path(downloaded, layout.r2mean_key(SUB))
    path.write_bytes(crafted[case])
    with pytest.raises(CorruptFileError) as info:
        load_subject(SUB, data_dir=downloaded).get_n_voxels()
    assert path.name in str(info.value)
    _tried(request)


def test_crafted_files_never_allocate_gigabytes(crafted, tmp_path, request):  # type: ignore[no-untyped-def]
    """Read every crafted file in a child whose address space is capped at 2 GiB."""
    folder = tmp_path / "crafted"
    folder.mkdir()
    for name, data in crafted.items():
        (folder / f"{name}.nii.gz").write_bytes(data)
    code = textwrap.dedent(
        """
        import resource, sys
        from pathlib import Path
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from laion_fmri import _nifti as nifti
        from laion_fmri.errors import CorruptFileError
        for path in sorted(Path(sys.argv[1]).iterdir()):
            try:
                hdr = nifti.read_header(path)
                nifti.read_masked(path, nifti.gather_offsets(
                    __import__("numpy").ones(hdr.grid_shape, bool)), header=hdr)
                print(path.name, "READ")
            except CorruptFileError as exc:
                assert str(path) in str(exc), exc
                print(path.name, "CorruptFileError")
            except BaseException as exc:
                print(path.name, type(exc).__name__, str(exc)[:200])
        """
    )
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    # "fewer volumes" and "grid mismatch" are self-consistent files: readable alone,
    # refused only against the subject's mask and trial table (tested above).
    readable = {"fewer_volumes_than_data.nii.gz", "grid_mismatch.nii.gz"}
    bad = {k: v for k, v in results.items() if v != "CorruptFileError" and k not in readable}
    assert bad == {}
    assert len(results) == len(crafted)
    _tried(request, len(crafted))


# --------------------------------------------------------------------------- trial tables
TSV_CASES: dict[str, Callable[[str], str]] = {
    "missing_label_column": lambda t: _drop_column(t, "label"),
    "header_only": lambda t: t.splitlines()[0] + "\n",
    "fewer_rows": lambda t: "\n".join(t.splitlines()[:-3]) + "\n",
    "binary_garbage": lambda t: "\x00\x01\x02\xff\xfe" * 50,
    "empty": lambda t: "",
    "beta_index_text": lambda t: _replace_column(t, "beta_index", "abc"),
    "run_text": lambda t: _replace_column(t, "run", "x"),
    "html_error_page": lambda t: "<Error><Code>AccessDenied</Code></Error>\n",
}


def _drop_column(text: str, column: str) -> str:
    lines = text.splitlines()
    idx = lines[0].split("\t").index(column)
    return "\n".join("\t".join(c for i, c in enumerate(ln.split("\t")) if i != idx) for ln in lines) + "\n"


def _replace_column(text: str, column: str, value: str) -> str:
    lines = text.splitlines()
    idx = lines[0].split("\t").index(column)
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split("\t")
        cells[idx] = value
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("case", sorted(TSV_CASES))
def test_malformed_trial_table(case, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    path = layout.local_path(downloaded, layout.trials_key(SUB, SES))
    path.write_bytes(TSV_CASES[case](path.read_text()).encode("latin-1"))
    sub = load_subject(SUB, data_dir=downloaded)
    for call in (
        lambda: sub.get_betas(SES, stimuli="shared"),
        lambda: sub.get_betas(SES, average="label"),
        lambda: sub.metadata,
    ):
        with pytest.raises(CorruptFileError) as info:
            call()
        assert path.name in str(info.value)
    _tried(request, 3)


# --------------------------------------------------------------------------- stimulus files
def _write_h5(path: Path, **datasets: np.ndarray) -> None:
    path.unlink()
    with h5py.File(path, "w") as fh:
        for name, value in datasets.items():
            fh.create_dataset(name, data=value)


def _embedding_cases(path: Path) -> dict[str, Callable[[], None]]:
    with h5py.File(path, "r") as fh:
        emb = fh[layout.H5_EMBEDDING][()]
        ids = fh[layout.H5_IMAGE_IDS][()]
        valid = fh[layout.H5_VALID][()]
    return {
        "int_dtype": lambda: _write_h5(path, embedding=emb.astype(np.int32), image_ids=ids, valid=valid),
        "three_d": lambda: _write_h5(path, embedding=emb[:, :, None], image_ids=ids, valid=valid),
        "ids_short": lambda: _write_h5(path, embedding=emb, image_ids=ids[:-1], valid=valid),
        "valid_float": lambda: _write_h5(path, embedding=emb, image_ids=ids, valid=valid.astype(float)),
        "no_embedding": lambda: _write_h5(path, image_ids=ids, valid=valid),
        "not_hdf5": lambda: path.write_bytes(b"<Error><Code>AccessDenied</Code></Error>"),
        "empty_file": lambda: path.write_bytes(b""),
    }


EMBEDDING_CASES = [
    "int_dtype", "three_d", "ids_short", "valid_float", "no_embedding", "not_hdf5", "empty_file",
]


@pytest.mark.parametrize("case", EMBEDDING_CASES)
def test_malformed_embedding_file(case, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.stimuli import load_stimuli

    path = downloaded / layout.embeddings_key("CLIP")
    stim = load_stimuli(downloaded)
    name = stim.embeddings.image_ids("CLIP")[0]
    stim.close()
    _embedding_cases(path)[case]()
    stim = load_stimuli(downloaded)
    with pytest.raises(CorruptFileError) as info:
        stim.embeddings.get("CLIP", [name])
    assert path.name in str(info.value)
    stim.close()
    _tried(request)


def _segmentation_cases(path: Path) -> dict[str, Callable[[], None]]:
    with h5py.File(path, "r") as fh:
        masks = fh[layout.H5_MASKS][()]
    return {
        "masks_2d": lambda: _write_h5(path, masks=masks.reshape(masks.shape[0], -1)),
        "masks_float": lambda: _write_h5(path, masks=masks.astype(np.float32)),
        "not_hdf5": lambda: path.write_bytes(os.urandom(2048)),
    }


@pytest.mark.parametrize("case", ["masks_2d", "masks_float", "not_hdf5"])
def test_malformed_segmentation_file(case, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.stimuli import load_stimuli

    path = downloaded / layout.SEGMENTATIONS_KEY
    _segmentation_cases(path)[case]()
    stim = load_stimuli(downloaded)
    seg = stim.segmentations
    name = seg.images()[0]
    noun = seg.nouns(name, localized_only=False)[0]
    with pytest.raises(CorruptFileError) as info:
        seg.get(name, noun)
    assert path.name in str(info.value)
    stim.close()
    _tried(request)


CSV_FILES = {
    "captions": (layout.CAPTIONS_KEY, lambda s: s.captions.get(s.captions.images()[0])),
    "segmentations": (layout.SEGMENTATIONS_METADATA_KEY, lambda s: s.segmentations.metadata),
}


@pytest.mark.parametrize("which", sorted(CSV_FILES))
@pytest.mark.parametrize("damage", ["drop_image_name", "drop_last_column", "garbage", "empty"])
def test_malformed_stimulus_csv(which, damage, downloaded, request):  # type: ignore[no-untyped-def]
    from laion_fmri.stimuli import load_stimuli

    key, call = CSV_FILES[which]
    path = downloaded / key
    text = path.read_text()
    lines = text.splitlines()
    header = lines[0].split(",")
    if damage == "drop_image_name":
        lines[0] = ",".join("name" if c == "image_name" else c for c in header)
        path.write_text("\n".join(lines) + "\n")
    elif damage == "drop_last_column":
        lines[0] = ",".join([*header[:-1], "zzz"])
        path.write_text("\n".join(lines) + "\n")
    elif damage == "garbage":
        path.write_bytes(b"\xff\xfe\x00garbage\x00\n\x01\x02")
    else:
        path.write_bytes(b"")
    stim = load_stimuli(downloaded)
    with pytest.raises(CorruptFileError) as info:
        call(stim)
    assert path.name in str(info.value)
    stim.close()
    _tried(request)
