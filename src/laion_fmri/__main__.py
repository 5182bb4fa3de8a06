"""``python -m laion_fmri`` runs the CLI."""

import sys

from laion_fmri.cli import main

__all__: list[str] = []

sys.exit(main())
