"""Trial tables of a subject: one validated table per session, the stacked metadata,
and the one check that a table's rows line up with the session's beta volumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from laion_fmri import _nifti, _tables, layout
from laion_fmri.errors import CorruptFileError
from laion_fmri.subject._files import SubjectFiles, file_stamp

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STIMULI_FILTERS = ("shared", "unique")


def parse_trials(path: Path) -> pd.DataFrame:
    """Read and check one trial table (TSV); without ``beta_index``, rows are in volume order."""
    import pandas as pd

    _tables.check_table(path, "\t")  # bounded before pandas allocates from what the file declares
    try:
        df = pd.read_csv(
            path, sep="\t", dtype={"label": str, "session": str}, keep_default_na=False
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not a readable TSV trial table ({exc}).") from exc
    if "beta_index" not in df.columns:
        # Tables written without it (the reference reads them so): row i is volume i.
        df.insert(min(2, len(df.columns)), "beta_index", np.arange(len(df), dtype=np.int64))
    missing = [c for c in layout.TRIAL_COLUMNS if c not in df.columns]
    if missing:
        raise CorruptFileError(
            f"{path} lacks the column(s) {', '.join(missing)} (found: "
            f"{', '.join(map(str, df.columns))}); expected {', '.join(layout.TRIAL_COLUMNS)}. "
            "Delete it and download it again."
        )
    for column in ("run", "beta_index"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CorruptFileError(
                f"{path}: column {column!r} must hold integers, found {df[column].iloc[row]!r} "
                f"in data row {row + 1}. Delete it and download it again."
            )
        df[column] = values.astype(np.int64)
    return df


def share_kind(label: str) -> str | None:
    """``"shared"``/``"unique"`` from an image name's prefix, else ``None``."""
    for kind in STIMULI_FILTERS:
        if label.startswith(kind + "_"):
            return kind
    return None


class Trials:
    """Trial tables of one subject (cached per file, checked against the betas)."""

    def __init__(self, files: SubjectFiles) -> None:
        self._files = files
        self._metadata: tuple[tuple[object, ...], pd.DataFrame] | None = None

    def path(self, session: str) -> Path:
        return self._files.path(layout.trials_key(self._files.subject, session))

    def table(self, session: str) -> pd.DataFrame:
        """The validated trial table of a session (shared: do not modify)."""
        key = layout.trials_key(self._files.subject, session)
        path = self._files.require(key, "trial table", session)
        return self._files.cached("trials", path, parse_trials)

    def info(self, sessions: list[str], single: bool) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Copies of the tables: one, or ``{session: table}``."""
        tables = {s: self.table(s).copy() for s in sessions}
        return tables[sessions[0]] if single else tables

    def n_volumes(self, session: str) -> int | None:
        """Beta volumes of the session's beta file (from its header), ``None`` if absent."""
        path = self._files.path(layout.betas_key(self._files.subject, session))
        if not path.is_file():
            return None
        return self._files.cached(
            "n_volumes", path, lambda p: _nifti.read_header(p, check_size=False).n_volumes
        )

    def check_rows(self, session: str, n_rows: int, n_volumes: int) -> None:
        """The one check that a trial table describes exactly the session's beta volumes."""
        if n_rows != n_volumes:
            raise CorruptFileError(
                f"{self.path(session)} has {n_rows} rows but the betas of {session} "
                f"({self._files.path(layout.betas_key(self._files.subject, session)).name}) have "
                f"{n_volumes} volumes; re-download {session}."
            )

    def labels(self, session: str, n_volumes: int) -> np.ndarray:
        """The ``label`` column as a str array (shared), checked against ``n_volumes``."""
        table = self.table(session)
        self.check_rows(session, len(table), n_volumes)
        load: Callable[[Path], np.ndarray] = lambda _: table["label"].astype(str).to_numpy()  # noqa: E731
        return self._files.cached("labels", self.path(session), load)

    def rows(self, session: str, stimuli: str | None, n_volumes: int) -> np.ndarray | None:
        """Rows whose image is shared/unique (``None``: every row)."""
        if stimuli is None:
            return None
        labels = self.labels(session, n_volumes)
        return np.flatnonzero(np.char.startswith(labels.astype(str), stimuli + "_"))

    def metadata(self, sessions: list[str]) -> pd.DataFrame:
        """Trials of ``sessions`` stacked in order, one row per beta (a fresh copy)."""
        stamp = tuple(
            (s, file_stamp(self.path(s)) if self.path(s).is_file() else None, self.n_volumes(s))
            for s in sessions
        )
        if self._metadata is None or self._metadata[0] != stamp:
            self._metadata = (stamp, self._build(sessions))
        return self._metadata[1].copy()

    def _build(self, sessions: list[str]) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for session in sessions:
            df = self.table(session).copy()
            n_volumes = self.n_volumes(session)
            if n_volumes is not None:
                # Rows must line up with get_betas: one per beta volume.
                self.check_rows(session, len(df), n_volumes)
            df["session_trial"] = np.arange(len(df), dtype=np.int64)
            frames.append(df)
        if not frames:
            cols = [*layout.TRIAL_COLUMNS, "session_trial"]
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        else:
            out = pd.concat(frames, ignore_index=True)
        out["image_name"] = out["label"].astype(str)
        # Classify each distinct image once, not once per trial.
        codes, names = pd.factorize(out["image_name"])
        for column, classify in (("unique_or_shared", share_kind), ("dataset", layout.dataset_of_label)):
            kinds = np.array([classify(x) for x in names] + [None], dtype=object)
            out[column] = kinds[codes].tolist()
        out.index = pd.RangeIndex(len(out), name="trial")
        return out


__all__ = ["STIMULI_FILTERS", "Trials", "parse_trials", "share_kind"]
