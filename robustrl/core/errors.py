"""The one exception type that reaches users as a one-line message."""


class RobustRLError(Exception):
    """Bad input or state the user can fix; the CLI prints it as one line, no traceback.

    The message says what is wrong and what to do, e.g.
    ``unknown env id 'mujoco/Hoper-v5'; did you mean 'mujoco/Hopper-v5'?``.
    """


class MissingExtraError(RobustRLError):
    """An optional dependency is not installed; the message names the extra that installs it
    (`pip install 'robustrl[mpe]'`). Tests that hit it are skipped (conftest.py)."""
