"""Batch DQN on CartPole: the TD target bootstraps from the next state even when the transition ended the episode.

Fitted Q-learning from a fixed replay buffer of exploratory CartPole transitions (the classic
cart-pole dynamics, reward +1 per step, failure when the pole passes 12 degrees or the cart leaves
the track). Q-network 4-64-64-2, Huber loss, Adam, target network synced every 200 updates,
gamma 0.95. The greedy policy is evaluated on 10 episodes capped at 500 steps.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)


class CartPole:
    def reset(self):
        self.s = [random.uniform(-0.05, 0.05) for _ in range(4)]
        return list(self.s)

    def step(self, action):
        x, x_dot, th, th_dot = self.s
        force = 10.0 if action == 1 else -10.0
        cos, sin = math.cos(th), math.sin(th)
        temp = (force + 0.05 * th_dot ** 2 * sin) / 1.1
        th_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos ** 2 / 1.1))
        x_acc = temp - 0.05 * th_acc * cos / 1.1
        x, x_dot = x + 0.02 * x_dot, x_dot + 0.02 * x_acc
        th, th_dot = th + 0.02 * th_dot, th_dot + 0.02 * th_acc
        self.s = [x, x_dot, th, th_dot]
        done = abs(x) > 2.4 or abs(th) > 12 * math.pi / 180
        return list(self.s), 1.0, done


env = CartPole()

# ---- replay buffer from an exploratory policy ------------------------------
S, A, R, S2, D = [], [], [], [], []
while len(S) < 30000:
    s, done, t = env.reset(), False, 0
    while not done and t < 200:
        a = random.randrange(2) if random.random() < 0.7 else int(s[2] + 0.5 * s[3] > 0)
        s2, r, done = env.step(a)
        S.append(s); A.append(a); R.append(r); S2.append(s2); D.append(float(done))
        s, t = s2, t + 1
S, A, R, S2, D = (torch.tensor(v) for v in (S, A, R, S2, D))
SCALE = torch.tensor([1.0, 1.0, 0.1, 1.0])
S, S2 = S / SCALE, S2 / SCALE


def greedy_return(q, episodes=10, cap=500):
    lengths = []
    for _ in range(episodes):
        s, done, t = env.reset(), False, 0
        while not done and t < cap:
            with torch.no_grad():
                a = q(torch.tensor(s) / SCALE).argmax().item()
            s, _, done = env.step(a)
            t += 1
        lengths.append(t)
    return sum(lengths) / len(lengths)


q = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
target_q = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
target_q.load_state_dict(q.state_dict())
opt = torch.optim.Adam(q.parameters(), lr=5e-4)
GAMMA = 0.95
print(f"buffer {len(S)} transitions, {int(D.sum())} terminal")

running = 0.0
for step in range(1, 2001):
    idx = torch.randint(0, len(S), (128,))
    q_sa = q(S[idx]).gather(1, A[idx].unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_v = target_q(S2[idx]).max(1).values
        target = R[idx] + GAMMA * next_v
    loss = F.smooth_l1_loss(q_sa, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    running += loss.item()
    if step % 200 == 0:
        target_q.load_state_dict(q.state_dict())
    if step % 400 == 0:
        with torch.no_grad():
            mean_q = q(S).max(1).values.mean().item()
        print(f"step {step}  td loss {running / 400:.4f}  mean max-Q {mean_q:6.2f}  greedy episode length {greedy_return(q):6.1f}")
        running = 0.0
