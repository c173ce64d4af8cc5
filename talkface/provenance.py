"""How an artifact was made: recorded beside every file a stage writes (docs/formats.md)."""

from __future__ import annotations

import datetime
import platform
import sys
from typing import Any

from talkface import __version__


def provenance(**fields: Any) -> dict[str, Any]:
    """Return a JSON-able record of versions, time and command line, plus `fields` (config, sources)."""
    import numpy
    import torch

    return {
        "talkface": __version__,
        "torch": str(torch.__version__),  # TorchVersion is not loadable with weights_only=True
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        **fields,
    }
