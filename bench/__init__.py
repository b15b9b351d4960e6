"""`make bench`: measures the converter and gateway against their irreducible parts."""

import sys
from pathlib import Path

# Like every service process, the benchmark imports the shared code from src/.
_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
