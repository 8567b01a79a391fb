"""A user env for the failure tests: CartPole whose step() raises while the environment
variable ROBUSTRL_TEST_BREAK is "1" (a real application error inside a job), appending a line
to the file named by ROBUSTRL_TEST_BREAK_LOG at each raise (to count attempts)."""

from __future__ import annotations

import os

import gymnasium as gym

from robustrl.envs import register


class BrokenCartPole(gym.Wrapper):
    def __init__(self, **kwargs):
        super().__init__(gym.make("CartPole-v1", **kwargs))

    def step(self, action):
        if os.environ.get("ROBUSTRL_TEST_BREAK") == "1":
            log = os.environ.get("ROBUSTRL_TEST_BREAK_LOG")
            if log:
                with open(log, "a") as f:
                    f.write(f"{os.getpid()}\n")
            raise RuntimeError("simulated crash in BrokenCartPole.step")
        return self.env.step(action)


register("custom/BrokenCartPole-v1", BrokenCartPole, check=False)  # broken on purpose
