"""Noise-ceiling maps of a subject: per session and across sessions (``desc=``)."""

from __future__ import annotations

import numpy as np

from laion_fmri import layout
from laion_fmri.errors import DataNotDownloadedError
from laion_fmri.subject._brain import BrainSpace
from laion_fmri.subject._files import SubjectFiles
from laion_fmri.subject._sessions import Sessions
from laion_fmri.vocab import suggest


class NoiseCeilings:
    """Noise-ceiling maps over brain voxels, float32 percent (fresh copies)."""

    def __init__(self, files: SubjectFiles, brain: BrainSpace) -> None:
        self._files = files
        self._brain = brain

    def _map(self, key: str, what: str, session: str) -> np.ndarray:
        path = self._files.require(key, what, session)
        load = lambda p: self._brain.grid_map(p).astype(np.float32)  # noqa: E731
        return self._files.cached(f"nc/{self._brain.mask_source}", path, load).copy()

    def session(self, session: str) -> np.ndarray:
        """The per-session map."""
        key = layout.session_nc_key(self._files.subject, session)
        return self._map(key, "noise ceiling", session)

    def on_disk(self) -> list[str]:
        """``desc`` values of the cross-session maps on disk, sorted."""
        base = self._files.root / layout.subject_glm_prefix(self._files.subject)
        if not base.is_dir():
            return []
        found = set()
        for p in base.glob(layout.pattern("subject_nc", subject=self._files.subject)):
            parsed = layout.parse(p.relative_to(self._files.root).as_posix())
            if parsed and parsed[0] == "subject_nc" and parsed[1]["desc"].startswith("Noiseceiling"):
                found.add(parsed[1]["desc"])
        return sorted(found)

    def desc(self, desc: str) -> np.ndarray:
        """A cross-session map, e.g. ``"Noiseceiling12rep"``."""
        if not isinstance(desc, str) or not desc.isalnum():
            raise ValueError(f"desc must be a name like 'Noiseceiling12rep', not {desc!r}.")
        subject = self._files.subject
        key = layout.subject_nc_key(subject, desc)
        if not self._files.path(key).is_file():
            found = self.on_disk()
            known = sorted({*found, *layout.SUBJECT_NC_DESCS})
            if desc not in known:
                raise ValueError(
                    f"Unknown noise-ceiling desc {desc!r} for {subject}.{suggest(desc, known, 2)} "
                    f"Published: {', '.join(layout.SUBJECT_NC_DESCS)}; on disk: "
                    f"{', '.join(found) or 'none'}."
                )
            raise DataNotDownloadedError(
                f"The noise ceiling desc={desc!r} of {subject} is not downloaded "
                f"({self._files.path(key)}). Download the subject-level maps with "
                f"`{self._files.hint(layout.AVERAGES)}`."
            )
        return self._map(key, "noise ceiling", layout.AVERAGES)

    def get(
        self, sessions: Sessions, session: object, desc: object, voxels: np.ndarray | None
    ) -> np.ndarray | dict[str, np.ndarray]:
        """``Subject.get_noise_ceiling``: one map or a dict, restricted to ``voxels``."""
        if (session is None) == (desc is None):
            raise ValueError("Pass exactly one of session= or desc= to get_noise_ceiling.")

        def pick(values: np.ndarray) -> np.ndarray:
            return values if voxels is None else values[voxels]

        if desc is not None:
            if isinstance(desc, (list, tuple)):
                return {d: pick(self.desc(d)) for d in desc}
            return pick(self.desc(desc))  # type: ignore[arg-type]
        names, single = sessions.resolve(session)
        out = {s: pick(self.session(s)) for s in names}
        return out[names[0]] if single else out


__all__ = ["NoiseCeilings"]
