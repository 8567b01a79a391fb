"""Offline datasets: the on-disk format with its D4RL/Minari loaders (`dataset`) and the
locally generated PointMaze datasets (`generate`, the D4RL/Minari recipe)."""

from robustrl.data.dataset import OfflineDataset, load_dataset, save_dataset

__all__ = ["OfflineDataset", "load_dataset", "save_dataset"]
