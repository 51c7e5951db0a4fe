"""REINFORCE on CartPole: the policy net already ends in Softmax, and its probabilities are then passed to Categorical(logits=...), which applies a second softmax."""
import math
import torch
import torch.nn as nn
from torch.distributions import Categorical

torch.manual_seed(0)
torch.set_num_threads(1)


class BatchedCartPole:
    """Classic cart-pole (same constants as gym CartPole-v1), N environments stepped together."""

    def __init__(self, n):
        self.n = n
        self.gravity, self.masscart, self.masspole, self.length = 9.8, 1.0, 0.1, 0.5
        self.force_mag, self.tau = 10.0, 0.02
        self.total_mass = self.masscart + self.masspole
        self.polemass_length = self.masspole * self.length

    def reset(self):
        self.state = (torch.rand(self.n, 4) - 0.5) * 0.1
        return self.state.clone()

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state.unbind(1)
        force = torch.where(action == 1, self.force_mag, -self.force_mag)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot ** 2 * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos ** 2 / self.total_mass))
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = torch.stack([x, x_dot, theta, theta_dot], 1)
        done = (x.abs() > 2.4) | (theta.abs() > 12 * 2 * math.pi / 360)
        return self.state.clone(), done


policy = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 2), nn.Softmax(dim=-1))
opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
env = BatchedCartPole(32)
GAMMA, MAX_STEPS = 0.99, 200

for update in range(35):
    obs = env.reset()
    alive = torch.ones(env.n, dtype=torch.bool)
    log_probs, rewards, masks, entropies = [], [], [], []
    for t in range(MAX_STEPS):
        probs = policy(obs)
        dist = Categorical(logits=probs)
        action = dist.sample()
        obs, done = env.step(action)
        log_probs.append(dist.log_prob(action))
        entropies.append(dist.entropy().detach())
        rewards.append(alive.float())
        masks.append(alive.float())
        alive = alive & ~done
        if not alive.any():
            break
    rewards, masks, log_probs = torch.stack(rewards), torch.stack(masks), torch.stack(log_probs)
    returns = torch.zeros_like(rewards)
    running = torch.zeros(env.n)
    for t in reversed(range(len(rewards))):
        running = rewards[t] + GAMMA * running * masks[t]
        returns[t] = running
    valid = masks.bool()
    adv = (returns - returns[valid].mean()) / (returns[valid].std() + 1e-8)
    loss = -(log_probs * adv * masks).sum() / masks.sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if update % 5 == 4:
        entropy = (torch.stack(entropies) * masks).sum() / masks.sum()
        print(f"update {update + 1} policy_loss {loss.item():.4f} mean_episode_length {masks.sum(0).mean():.1f} "
              f"action_entropy {entropy:.3f}")
