"""Configuration precedence (argument > env > config file > default) and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laion_fmri import config
from laion_fmri.errors import ConfigError, DataDirNotSetError


def test_data_dir_unset_raises_actionable_error() -> None:
    with pytest.raises(DataDirNotSetError, match="dataset_initialize"):
        config.get_data_dir()


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    persisted, env, arg = (tmp_path / n for n in ("persisted", "env", "arg"))
    for p in (persisted, env, arg):
        p.mkdir()
    config.dataset_initialize(persisted)
    assert config.get_data_dir() == str(persisted.resolve())
    assert (persisted / ".laion_fmri").is_dir()
    monkeypatch.setenv(config.ENV_DATA_DIR, str(env))
    assert config.get_data_dir() == str(env)
    assert config.get_data_dir(arg) == str(arg)
    origin = f"environment variable {config.ENV_DATA_DIR}"
    assert config.effective_settings()["data_dir"] == (str(env), origin)


def test_dataset_initialize_validates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mkdir -p"):
        config.dataset_initialize(tmp_path / "missing")
    with pytest.raises(TypeError):
        config.dataset_initialize(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        config.get_data_dir(b"/tmp")  # type: ignore[arg-type]


def test_source_and_endpoint_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config.get_source().is_default
    config.set_source("s3://other-bucket/prefix", endpoint_url="http://127.0.0.1:9")
    src = config.get_source()
    assert (src.kind, src.bucket, src.prefix, src.endpoint_url) == ("s3", "other-bucket", "prefix", "http://127.0.0.1:9")
    monkeypatch.setenv(config.ENV_SOURCE, str(tmp_path))
    src = config.get_source()
    assert src.kind == "local" and src.path == tmp_path
    monkeypatch.delenv(config.ENV_SOURCE)
    config.set_source("", endpoint_url="")  # reset both
    assert config.get_source().is_default
    saved = json.loads(config.config_path().read_text())
    assert "source" not in saved and "endpoint_url" not in saved


@pytest.mark.parametrize("bad", ["http://bucket", "s3://", "", "ftp://x/y"])
def test_bad_sources_raise_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        config.parse_source(bad)


def test_bad_endpoint_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="http://host:port"):
        config.set_source(endpoint_url="127.0.0.1:9000")


def test_file_url_source_is_local() -> None:
    src = config.parse_source("file:///data/mirror")
    assert src.kind == "local" and src.path == Path("/data/mirror")


def test_corrupt_config_file_raises(tmp_path: Path) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config.get_data_dir()
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        config.get_data_dir()


def test_top_level_exports_resolve() -> None:
    import laion_fmri

    for name in laion_fmri.__all__:
        assert getattr(laion_fmri, name) is not None, name
    assert "load_subject" in dir(laion_fmri)
    with pytest.raises(AttributeError):
        laion_fmri.no_such_name  # noqa: B018


def test_initialize_rejects_a_file_and_set_source_a_missing_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from laion_fmri.config import dataset_initialize, set_source
    from laion_fmri.errors import ConfigError

    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        dataset_initialize(a_file)
    with pytest.raises(ConfigError, match="does not exist"):
        set_source(str(tmp_path / "missing"))
    set_source(str(tmp_path))  # an existing folder is fine


# --------------------------------------------------------------------------- issue 15
def _write_config(text: str | bytes) -> Path:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    ("content", "key", "found"),
    [
        ('{"data_dir": ["a", "b"]}', "data_dir", "a list"),
        ('{"source": 7}', "source", "an integer"),
        ('{"endpoint_url": true}', "endpoint_url", "true or false"),
        ('{"data_dir": {"x": 1}}', "data_dir", "an object"),
    ],
)
def test_wrongly_typed_config_value_names_the_key(content: str, key: str, found: str) -> None:
    path = _write_config(content)
    with pytest.raises(ConfigError) as info:
        config.get_source() if key != "data_dir" else config.get_data_dir()
    text = str(info.value)
    assert f'"{key}" must be a string' in text and found in text
    assert str(path) in text and "\n" not in text
    # Setting a value does not silently overwrite the broken file either.
    with pytest.raises(ConfigError):
        config.set_source("s3://other")
    assert path.read_text() == content


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"null", b"7",
     b'{"data_dir": NaN}', b"\xff\xfe{}", b'{"data_dir": "' + b"x" * (2 << 20) + b'"}'],
    ids=["deep_list", "deep_object", "null", "number", "nan", "not_utf8", "too_large"],
)
def test_hostile_config_is_one_line_error_in_api_and_cli(
    content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    from laion_fmri.cli import main

    path = _write_config(content)
    with pytest.raises(ConfigError, match=r"config\.json"):
        config.get_data_dir()
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert "delete the file" in err


def test_null_config_values_are_unset(tmp_path: Path) -> None:
    _write_config('{"data_dir": null, "source": null, "other": [1, {"deep": 2}]}')
    with pytest.raises(DataDirNotSetError):
        config.get_data_dir()
    assert config.get_source().is_default


def test_tilde_is_expanded_in_env_and_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(config.ENV_DATA_DIR, "~/data")
    assert config.get_data_dir() == str(home / "data")
    assert config.effective_settings()["data_dir"][0] == str(home / "data")
    monkeypatch.delenv(config.ENV_DATA_DIR)
    _write_config(json.dumps({"data_dir": "~/data", "source": "~/mirror"}))
    assert config.get_data_dir() == str(home / "data")
    assert config.get_source().path == home / "mirror"


def test_tilde_data_dir_reaches_the_loaders(downloaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laion_fmri.stimuli import load_stimuli
    from laion_fmri.subject import load_subject

    monkeypatch.setenv("HOME", str(downloaded.parent))
    monkeypatch.setenv(config.ENV_DATA_DIR, f"~/{downloaded.name}")
    sub = load_subject("sub-03")
    assert Path(sub.data_dir) == downloaded
    assert sub.get_n_voxels() > 0
    with load_stimuli() as stim:
        assert len(stim.metadata) > 0


@pytest.mark.parametrize("value", ["1", "true", "YES", " on ", ""])
def test_cache_env_on_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_CACHE, value)
    assert config.cache_enabled() is True


@pytest.mark.parametrize("value", ["0", "false", "No", "OFF"])
def test_cache_env_off_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_CACHE, value)
    assert config.cache_enabled() is False


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "nope"])
def test_cache_env_other_values_are_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.ENV_CACHE, value)
    with pytest.raises(ConfigError) as info:
        config.cache_enabled()
    assert "LAION_FMRI_CACHE" in str(info.value) and repr(value) in str(info.value)
    assert "off" in str(info.value)
    assert config.cache_enabled(True) is True  # an explicit argument still wins
