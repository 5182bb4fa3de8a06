"""Bounds checked before a CSV/TSV file is handed to pandas.

pandas allocates per column and per cell: a 8 MB header of a million column
names makes it allocate gigabytes. Every table this package reads (trial
tables, stimulus metadata, captions, segmentation metadata) has a dozen or so
columns and short lines, so :func:`check_table` refuses a file with more than
:data:`MAX_COLUMNS` columns or a line over :data:`MAX_LINE_BYTES` before it is
parsed. The scan reads the file once, a line at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

from laion_fmri.errors import CorruptFileError

MAX_COLUMNS = 256
MAX_LINE_BYTES = 1 << 20


def check_table(path: str | os.PathLike[str], sep: str = ",") -> None:
    """Refuse a table whose header or lines are far beyond what the dataset's tables hold.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV/TSV file.
    sep : str
        Column separator (``","`` or ``"\\t"``).

    Raises
    ------
    CorruptFileError
        Naming the file, for more than :data:`MAX_COLUMNS` columns in the header
        or a line longer than :data:`MAX_LINE_BYTES`.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> check_table("sub-03_ses-01_task-images_desc-SingletrialBetas_trials.tsv", "\\t")  # doctest: +SKIP
    """
    path = Path(path)
    mark = sep.encode()
    with open(path, "rb") as fh:
        for number, line in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(line) > MAX_LINE_BYTES:
                raise CorruptFileError(
                    f"{path} has a line over {MAX_LINE_BYTES:,} bytes (line {number}); it is not one "
                    "of the dataset's tables. Delete it and download it again."
                )
            if number == 1 and line.count(mark) + 1 > MAX_COLUMNS:
                raise CorruptFileError(
                    f"{path} declares {line.count(mark) + 1:,} columns (the dataset's tables have at "
                    f"most a few dozen). Delete it and download it again."
                )


__all__ = ["MAX_COLUMNS", "MAX_LINE_BYTES", "check_table"]
