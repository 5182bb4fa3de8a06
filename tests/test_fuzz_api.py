"""Fuzz the public API with hypothesis: every failure is documented and actionable.

A call may succeed, or raise a :class:`~laion_fmri.errors.LaionFMRIError`
subclass, or one of the documented built-ins for argument errors
(``ValueError``/``TypeError``/``KeyError``/``FileNotFoundError``) *raised by
our own code* (the innermost frame is inside ``laion_fmri``), always with a
non-empty message. Anything else (IndexError, AttributeError, a numpy or
pandas error escaping) fails the test.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.helpers import SES, SPEC, SUB
from faults.record import record
from laion_fmri.errors import LaionFMRIError

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_BUILTINS = (ValueError, TypeError, KeyError, FileNotFoundError)
_COUNTS: dict[str, list[int]] = {}


def _outcome(name: str, fn: Callable[[], Any]) -> str:
    """Run ``fn``; return "ok" or the exception class name, failing on undocumented errors."""
    counts = _COUNTS.setdefault(name, [0, 0])
    counts[0] += 1
    try:
        fn()
    except LaionFMRIError as exc:
        counts[1] += 1
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return type(exc).__name__
    except _BUILTINS as exc:
        counts[1] += 1
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        assert str(text).strip(), f"{type(exc).__name__} without a message"
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        assert "/laion_fmri/" in frame.filename.replace("\\", "/"), (
            f"{type(exc).__name__}({text!r}) escaped from {frame.filename}:{frame.lineno}"
        )
        return type(exc).__name__
    return "ok"


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    yield
    for name, (tried, errors) in sorted(_COUNTS.items()):
        record("fuzz", f"{request.node.nodeid}::{name}", inputs=tried, documented_errors=errors)


# --------------------------------------------------------------------------- strategies
_junk_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "sub-", "sub-999", "ses-", "ses-00", "ses-99", "../sub-01", "sub-01\x00",
                     "SUB-01", "sub_01", "1e3", "-1", "nan", "all", "averages", "ses-31"]),
)
_ids = st.one_of(
    _junk_text,
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.lists(st.one_of(st.text(max_size=8), st.integers(-5, 50)), max_size=4),
    st.builds(bytes, st.binary(max_size=8)),
)


@pytest.fixture(scope="module")
def subject(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    from laion_fmri.subject import load_subject

    return load_subject(SUB, data_dir=shared_downloaded)


# --------------------------------------------------------------------------- ids
@FUZZ
@given(value=_ids)
def test_fuzz_subject_ids(value: object, shared_downloaded: Path) -> None:
    from laion_fmri.subject import load_subject

    _outcome("load_subject", lambda: load_subject(value, data_dir=shared_downloaded))


@FUZZ
@given(value=_ids)
def test_fuzz_session_ids(value: object, subject) -> None:  # type: ignore[no-untyped-def]
    result = _outcome("get_trial_info", lambda: subject.get_trial_info(value))
    if isinstance(value, str) and value.strip() in SPEC.sessions:
        assert result == "ok"


@FUZZ
@given(query=st.one_of(_junk_text, st.lists(_junk_text, max_size=3), st.integers(), st.none()))
def test_fuzz_roi_queries(query: object, subject) -> None:  # type: ignore[no-untyped-def]
    _outcome("get_roi_mask", lambda: subject.get_roi_mask(query))


@FUZZ
@given(
    n=st.integers(min_value=0, max_value=20),
    dtype=st.sampled_from(["bool", "int8", "int64", "float32", "float64", "object", "U1"]),
    shape_kind=st.sampled_from(["flat", "2d", "scalar", "off_by_one", "exact"]),
)
def test_fuzz_masks(n: int, dtype: str, shape_kind: str, subject) -> None:  # type: ignore[no-untyped-def]
    total = subject.get_n_voxels()
    length = {"flat": n, "off_by_one": total + 1, "exact": total}.get(shape_kind, n)
    if shape_kind == "2d":
        mask = np.ones((n, 2), dtype=dtype)
    elif shape_kind == "scalar":
        mask = np.array(True).astype(dtype)
    else:
        mask = np.ones(length, dtype=dtype)
    result = _outcome("get_betas(mask=)", lambda: subject.get_betas(SES, mask=mask))
    if shape_kind == "exact" and dtype == "bool":
        assert result == "ok"
    elif not (shape_kind == "exact" and dtype == "bool"):
        assert result != "ok"


@FUZZ
@given(thr=st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**9), 10**9),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.floats(), max_size=2),
))
def test_fuzz_nc_thresholds(thr: object, subject) -> None:  # type: ignore[no-untyped-def]
    result = _outcome("get_betas(nc_threshold=)", lambda: subject.get_betas(SES, nc_threshold=thr))
    if isinstance(thr, float) and (math.isnan(thr) or thr < 0 or thr > 100):
        assert result != "ok"


@FUZZ
@given(stimuli=st.one_of(_junk_text, st.none()), average=st.one_of(_junk_text, st.none()))
def test_fuzz_trial_filters(stimuli: object, average: object, subject) -> None:  # type: ignore[no-untyped-def]
    _outcome("get_betas(stimuli,average)", lambda: subject.get_betas(SES, stimuli=stimuli, average=average))


# --------------------------------------------------------------------------- splits
@FUZZ
@given(name=st.one_of(_junk_text, st.sampled_from(["random_0", "ood_0", "shared", "tau"])),
       pool=st.one_of(_ids, st.sampled_from(["shared", "sub-01", "sub-03", 3])),
       variant=st.one_of(st.integers(-3, 10**6), st.none(), st.text(max_size=3)))
def test_fuzz_split_names(name: object, pool: object, variant: object) -> None:
    from laion_fmri.splits import get_train_test_ids, load_split

    _outcome("load_split", lambda: load_split(name, pool))  # type: ignore[arg-type]
    _outcome("get_train_test_ids",
             lambda: get_train_test_ids(name, pool, variant_id=variant))  # type: ignore[arg-type]


@FUZZ
@given(name=st.one_of(_junk_text, st.sampled_from(["random_0", "random_1"])),
       ood=st.one_of(st.none(), _junk_text, st.lists(_junk_text, max_size=2)))
def test_fuzz_subject_split(name: object, ood: object, subject) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.splits import subject_split

    _outcome("subject_split", lambda: subject_split(subject, name, session=SES, ood_types=ood))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- stimuli
@pytest.fixture(scope="module")
def stimuli(shared_downloaded: Path):  # type: ignore[no-untyped-def]
    from laion_fmri.stimuli import load_stimuli

    hub = load_stimuli(shared_downloaded)
    yield hub
    hub.close()


@FUZZ
@given(name=st.one_of(_junk_text, st.integers(), st.none(), st.lists(_junk_text, max_size=3)),
       model=st.one_of(st.sampled_from(["CLIP", "clip", "DINOv2", "nope", ""]), st.integers()))
def test_fuzz_image_names(name: object, model: object, stimuli) -> None:  # type: ignore[no-untyped-def]
    _outcome("embeddings.get", lambda: stimuli.embeddings.get(model, name))
    _outcome("captions.get", lambda: stimuli.captions.get(name))
    _outcome("segmentations.for_image", lambda: stimuli.segmentations.for_image(name))


@FUZZ
@given(name=_junk_text)
def test_fuzz_unknown_image_name_is_keyerror(name: str, stimuli) -> None:  # type: ignore[no-untyped-def]
    known = set(stimuli.embeddings.image_ids("CLIP"))
    if name in known:
        return
    with pytest.raises(KeyError) as info:
        stimuli.embeddings.get("CLIP", name)
    assert isinstance(info.value, LaionFMRIError) and str(info.value).strip()
    _COUNTS.setdefault("embeddings.get unknown", [0, 0])
    _COUNTS["embeddings.get unknown"][0] += 1
    _COUNTS["embeddings.get unknown"][1] += 1


# --------------------------------------------------------------------------- config and download args
@FUZZ
@given(source=st.one_of(_junk_text, st.sampled_from(
    ["s3://", "s3:///x", "http://x", "ftp://a/b", "file://", "s3://b/../..", "s3://a b"])),
    endpoint=st.one_of(st.none(), _junk_text, st.sampled_from(
        ["http://", "https://x:99999", "127.0.0.1:9000", "ftp://h", "http://h:1/p?q#f"])))
def test_fuzz_config_values(source: str, endpoint: str | None) -> None:
    from laion_fmri.config import parse_source, set_source

    _outcome("parse_source", lambda: parse_source(source, endpoint))
    _outcome("set_source", lambda: set_source(source=source, endpoint_url=endpoint))
    set_source(source="", endpoint_url="")


@FUZZ
@given(path=st.one_of(_junk_text, st.integers(), st.none(), st.builds(bytes, st.binary(max_size=4))))
def test_fuzz_data_dir(path: object) -> None:
    from laion_fmri.config import dataset_initialize, get_data_dir

    _outcome("dataset_initialize", lambda: dataset_initialize(path))  # type: ignore[arg-type]
    _outcome("get_data_dir", lambda: get_data_dir(path))  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:n_jobs:UserWarning")
@FUZZ
@given(subject_id=st.one_of(_ids, st.just(SUB)), ses=st.one_of(_ids, st.just(SES)),
       desc=st.one_of(st.none(), _junk_text), n_jobs=st.one_of(st.integers(-3, 300), st.floats(), _junk_text),
       include=st.one_of(st.none(), _junk_text, st.lists(_junk_text, max_size=2)))
def test_fuzz_download_args(subject_id, ses, desc, n_jobs, include, sample_root, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    import os

    from laion_fmri.download import download

    data = tmp_path_factory.getbasetemp() / "fuzz_download"
    data.mkdir(exist_ok=True)
    os.environ["LAION_FMRI_SOURCE"] = str(sample_root)
    try:
        _outcome("download(dry_run)", lambda: download(
            subject=subject_id, ses=ses, desc=desc, n_jobs=n_jobs, include=include,
            dry_run=True, progress=False, data_dir=data))
    finally:
        del os.environ["LAION_FMRI_SOURCE"]
    assert [p.name for p in data.iterdir() if p.name != ".laion_fmri"] == []


# --------------------------------------------------------------------------- more subject methods
@FUZZ
@given(session=st.one_of(st.none(), _ids), desc=st.one_of(st.none(), _junk_text,
       st.sampled_from(["Noiseceiling12rep", "NoiseceilingAllrep", "Noiseceiling4rep"])))
def test_fuzz_noise_ceiling(session: object, desc: object, subject) -> None:  # type: ignore[no-untyped-def]
    _outcome("get_noise_ceiling", lambda: subject.get_noise_ceiling(session=session, desc=desc))


@FUZZ
@given(n=st.integers(0, 10), dtype=st.sampled_from(["float32", "float64", "int16", "bool", "U2", "object"]),
       exact=st.booleans(), name=st.sampled_from(["x.nii.gz", "x.nii", "x.txt", "", "sub/x.nii.gz"]))
def test_fuzz_to_nifti(n: int, dtype: str, exact: bool, name: str, subject, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    values = np.ones(subject.get_n_voxels() if exact else n, dtype=dtype)
    out = tmp_path_factory.getbasetemp() / "fuzz_nifti"
    out.mkdir(exist_ok=True)
    _outcome("to_nifti", lambda: subject.to_nifti(values, out / name))


@FUZZ
@given(subjects=st.one_of(_ids, st.lists(_ids, max_size=3)))
def test_fuzz_load_subjects(subjects: object, shared_downloaded: Path) -> None:
    from laion_fmri.group import load_subjects

    _outcome("load_subjects", lambda: load_subjects(subjects, data_dir=shared_downloaded))  # type: ignore[arg-type]
