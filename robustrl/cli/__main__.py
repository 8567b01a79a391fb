"""`python -m robustrl.cli ...`: the same as the `robustrl` command (the tests and the bench
start subprocesses this way, independent of the installed console script)."""

import sys

from robustrl.cli import main

sys.exit(main())
