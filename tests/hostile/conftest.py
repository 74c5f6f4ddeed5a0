import sys
from pathlib import Path

# The wire client and the waiting helper of the integration tests.
sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
