"""Test-session settings shared by every test file."""

import torch

# Small networks run fastest on one thread, and two threads spin badly when the 2-core
# machine is shared with other processes.
torch.set_num_threads(1)
