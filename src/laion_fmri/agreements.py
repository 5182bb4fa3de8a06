"""One flow for every agreement a user accepts once per data directory.

An :class:`Agreement` shows its text, asks for a typed ``I AGREE`` on a
terminal, and records the acceptance in a marker file under
``<data_dir>/.laion_fmri/``. An environment variable can accept it for
scripted runs. Without a terminal and without a recorded acceptance it fails
at once with :class:`~laion_fmri.errors.LicenseNotAcceptedError` saying what
to do; it never waits on ``input()``.

The CC0 dataset notice (:data:`laion_fmri.licenses.DATASET_LICENSE`) and the
stimulus data-use agreement for sample/local sources
(:data:`laion_fmri.access.STIMULUS_AGREEMENT`) are the two instances.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from laion_fmri import layout
from laion_fmri.errors import LicenseNotAcceptedError

AGREE = "I AGREE"
_TRUE = ("1", "true", "yes")


@dataclass(frozen=True)
class Agreement:
    """A text accepted once per data directory by typing ``I AGREE``.

    Parameters
    ----------
    title : str
        What is accepted, for messages (``"dataset license (CC0 1.0)"``).
    text : callable
        Returns the text shown before the prompt.
    marker : str
        The :data:`laion_fmri.layout.STATE_FILES` entry recording acceptance.
    env_var : str, optional
        An environment variable that accepts when set to ``1``/``true``/``yes``.
    how : str
        What to do instead, said when there is no terminal or the answer is wrong.
    prompt : str
        The question asked.

    Examples
    --------
    >>> terms = Agreement("test terms", lambda: "Be nice.", "license", how="Accept them.")
    >>> terms.accepted("/nonexistent")
    False
    """

    title: str
    text: Callable[[], str]
    marker: str
    env_var: str | None = None
    how: str = ""
    prompt: str = f'Type "{AGREE}" to accept: '

    def marker_path(self, data_dir: str | os.PathLike[str]) -> Path:
        """The file that records acceptance for ``data_dir``.

        Parameters
        ----------
        data_dir : str or os.PathLike
            The data directory.

        Returns
        -------
        Path
        """
        return layout.state_path(data_dir, self.marker)

    def accepted(self, data_dir: str | os.PathLike[str]) -> bool:
        """Whether the agreement was accepted for ``data_dir``.

        Parameters
        ----------
        data_dir : str or os.PathLike
            The data directory.

        Returns
        -------
        bool
        """
        return self.marker_path(data_dir).is_file()

    def record(self, data_dir: str | os.PathLike[str]) -> Path:
        """Record acceptance (no prompt); return the marker file.

        Parameters
        ----------
        data_dir : str or os.PathLike
            The data directory.

        Returns
        -------
        Path
        """
        marker = self.marker_path(data_dir)
        marker.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        marker.write_text(f"accepted the {self.title} at {stamp}\n", encoding="utf-8")
        return marker

    def ask(
        self,
        input_fn: Callable[[str], str] | None = None,
        out: Callable[[str], None] = print,
        show: bool = True,
    ) -> None:
        """Show the text (unless ``show`` is false) and require a typed ``I AGREE``.

        Parameters
        ----------
        input_fn : callable, optional
            Reads one answer given a prompt (``input`` by default).
        out : callable
            Prints text.
        show : bool
            Print the agreement text first.

        Raises
        ------
        LicenseNotAcceptedError
            For any other answer (or end of input).
        """
        if show:
            out(self.text())
        try:
            reply = (input_fn or input)(self.prompt)
        except EOFError:
            reply = ""
        if reply.strip() != AGREE:
            raise LicenseNotAcceptedError(
                f"The {self.title} was not accepted (you typed {reply.strip()[:40]!r}, not "
                f"{AGREE!r}). {self.how}".rstrip()
            )

    def ensure(
        self,
        data_dir: str | os.PathLike[str],
        interactive: bool | None = None,
        input_fn: Callable[[str], str] | None = None,
        out: Callable[[str], None] = print,
    ) -> None:
        """Make sure the agreement was accepted for ``data_dir``, asking once on a terminal.

        Parameters
        ----------
        data_dir : str or os.PathLike
            The data directory.
        interactive : bool, optional
            Force (``True``) or forbid (``False``) the prompt; by default it is
            shown only when stdin is a terminal.
        input_fn : callable, optional
            Reads one answer given a prompt (``input`` by default).
        out : callable
            Prints text.

        Raises
        ------
        LicenseNotAcceptedError
            Not accepted: no terminal and no earlier acceptance, or another answer.
        """
        if self.accepted(data_dir):
            return
        if self.env_var and os.environ.get(self.env_var, "").strip().lower() in _TRUE:
            self.record(data_dir)
            return
        if interactive is None:
            interactive = bool(sys.stdin and sys.stdin.isatty())
        if not interactive:
            raise LicenseNotAcceptedError(
                f"The {self.title} has not been accepted for {data_dir}. {self.how}".rstrip()
            )
        self.ask(input_fn, out)
        self.record(data_dir)


__all__ = ["AGREE", "Agreement"]
