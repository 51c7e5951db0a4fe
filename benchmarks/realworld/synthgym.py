"""A stand-in for the part of gymnasium the RL scripts use: ``make('CartPole-v1')``.

gymnasium is not installed here. The driver rewrites ``import gymnasium as gym`` to
``import synthgym as gym``; the environment follows the classic cart-pole equations (Barto, Sutton
and Anderson 1983; Euler steps of 0.02 s), with the usual limits: the pole falls past 12 degrees or the
cart leaves +-2.4, and an episode is cut at 500 steps. Observations are float32 numpy arrays of 4.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

__all__ = ["make"]


class CartPole:
    """Cart-pole balancing, reward 1 per step survived."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit, x_limit, max_steps = 12 * 2 * math.pi / 360, 2.4, 500

    def __init__(self, render_mode=None):
        self.spec = SimpleNamespace(id="CartPole-v1", reward_threshold=475.0, max_episode_steps=500)
        self.rng = np.random.default_rng()
        self.state = np.zeros(4)
        self.steps = 0

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(-0.05, 0.05, size=4)
        self.steps = 0
        return self.state.astype(np.float32), {}

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        total_mass = self.masscart + self.masspole
        polemass_length = self.masspole * self.length
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = np.array([x, x_dot, theta, theta_dot])
        self.steps += 1
        terminated = bool(abs(x) > self.x_limit or abs(theta) > self.theta_limit)
        truncated = self.steps >= self.max_steps
        return self.state.astype(np.float32), 1.0, terminated, truncated, {}

    def render(self):
        return None

    def close(self):
        return None


def make(name: str, render_mode=None, **_):
    """Only CartPole-v1 is provided."""
    if name != "CartPole-v1":
        raise ValueError(f"synthgym provides only CartPole-v1, not {name!r}")
    return CartPole(render_mode=render_mode)
