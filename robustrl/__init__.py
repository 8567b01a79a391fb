"""robustrl: robust single- and multi-agent reinforcement learning and control."""

__version__ = "0.1.0"
