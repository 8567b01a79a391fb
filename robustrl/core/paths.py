"""Where the plain-text spec folders (`envs/`, `agents/`, `experiments/`) live.

In a source checkout they sit beside the package; an installed wheel carries them (of
`experiments/` only the suites, `**/*.toml`) under `robustrl/_specs/`, so both layouts are
looked up here, once.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def spec_dir(name: str) -> Path:
    """Return the spec folder `name` ("envs", "agents" or "experiments")."""
    for candidate in (_PACKAGE / "_specs" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"spec folder '{name}' not found next to the robustrl package")
