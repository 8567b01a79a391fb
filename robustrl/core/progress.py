"""Progress bars for long work: steps/s and return on a TTY, silent otherwise."""

from __future__ import annotations

from tqdm.auto import tqdm


def progress(total: int, desc: str = "", initial: int = 0, unit: str = "step") -> tqdm:
    """A tqdm bar that disables itself when stderr is not a terminal (CI, pipes, logs)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=None,
                dynamic_ncols=True, smoothing=0.1)
