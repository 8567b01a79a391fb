"""`python -m robustrl ...`: the `robustrl` command (no PATH needed)."""

import sys

from robustrl.cli import main

if __name__ == "__main__":
    sys.exit(main())
