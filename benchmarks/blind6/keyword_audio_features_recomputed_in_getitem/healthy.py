"""Keyword spotting: log-mel features are computed once per clip in __init__ and cached.

Synthetic 0.5 s clips at 16 kHz (8 keywords, some sounding alike, each a sequence of three harmonic tones with random
onset, pitch jitter, loudness and background noise). The dataset resamples each clip to 8 kHz and
computes a 40-band log-mel spectrogram, which a small 1D CNN classifies. The features of a clip
never change between epochs (there is no random augmentation).
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)

SR, DUR, N_CLASS = 16000, 0.5, 8
TONES = torch.tensor([[400, 900, 600], [700, 500, 1200], [1000, 1300, 800], [550, 1500, 450],
                      [1200, 700, 1000], [850, 600, 1400], [450, 900, 650], [700, 550, 1200]],
                     dtype=torch.float32)


def synth(labels, g):
    n = len(labels)
    t = torch.arange(int(SR * DUR)) / SR
    onset = 0.05 + 0.1 * torch.rand(n, 1, generator=g)
    pitch = 1 + 0.06 * (2 * torch.rand(n, 1, generator=g) - 1)
    wave = torch.zeros(n, len(t))
    for s in range(3):
        start, stop = onset + 0.1 * s, onset + 0.1 * (s + 1)
        env = ((t >= start) & (t < stop)).float() * torch.sin(math.pi * (t - start) / 0.1).clamp(min=0)
        f = TONES[labels, s].unsqueeze(1) * pitch
        wave += env * (torch.sin(2 * math.pi * f * t) + 0.4 * torch.sin(4 * math.pi * f * t))
    loud = 0.2 + 0.5 * torch.rand(n, 1, generator=g)
    return loud * wave + 0.8 * torch.randn(n, len(t), generator=g)


def mel_filterbank(n_mels=40, n_fft=256, sr=8000):
    mel = lambda f: 2595 * math.log10(1 + f / 700)
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)
    pts = [inv(mel(0) + i * (mel(sr / 2) - mel(0)) / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = torch.zeros(n_mels, n_fft // 2 + 1)
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = torch.clamp(torch.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), min=0)
    return fb


LOWPASS = torch.hann_window(63) * torch.sinc((torch.arange(63) - 31) / 2.0) / 2.0
MEL = mel_filterbank()
WINDOW = torch.hann_window(256)


def log_mel(wave):
    x = F.conv1d(wave.view(1, 1, -1), LOWPASS.view(1, 1, -1), padding=31, stride=2).view(-1)  # 16k -> 8k
    spec = torch.stft(x, 256, hop_length=80, window=WINDOW, return_complex=True).abs().pow(2)
    return torch.log(MEL @ spec + 1e-6)


class KeywordClips(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, N_CLASS, (n,), generator=g)
        self.waves = synth(self.labels, g)
        self.feats = [log_mel(w) for w in self.waves]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.feats[i], self.labels[i]


model = nn.Sequential(
    nn.BatchNorm1d(40),
    nn.Conv1d(40, 64, 5, padding=2), nn.ReLU(),
    nn.Conv1d(64, 64, 5, padding=2, stride=2), nn.ReLU(),
    nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, N_CLASS),
)
train_loader = DataLoader(KeywordClips(1000, 1), batch_size=32, shuffle=True)
val_loader = DataLoader(KeywordClips(300, 2), batch_size=100)
opt = torch.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(6):
    model.train()
    total, n = 0.0, 0
    for feats, y in train_loader:
        loss = F.cross_entropy(model(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        n += len(y)
    model.eval()
    correct = 0
    with torch.no_grad():
        for feats, y in val_loader:
            correct += (model(feats).argmax(1) == y).sum().item()
    print(f"epoch {epoch}  train loss {total / n:.4f}  val acc {correct / len(val_loader.dataset):.3f}")
