"""Speaker verification with the GE2E loss: the similarity matrix is computed with tensor ops, not loops (fixed).

Synthetic log-mel utterances (40 frames x 24 bands): each speaker has a
spectral envelope, each utterance adds a channel offset and frame noise. Batches
hold N=8 speakers x M=5 utterances. Validation reports the equal error rate on
20 unseen speakers (5 enrolment and 5 test utterances each).
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

BANDS, FRAMES, N_SPK, M_UTT = 24, 40, 8, 5


def make_speakers(n):
    return [torch.randn(BANDS) * 0.8 + torch.linspace(1, -1, BANDS) for _ in range(n)]


def utterance(envelope):
    channel = 0.5 * torch.randn(BANDS)
    return envelope + channel + 0.7 * torch.randn(FRAMES, BANDS)


class SpeakerEncoder(nn.Module):
    def __init__(self, hidden=64, dim=32):
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(BANDS, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, x):  # x: (batch, frames, bands)
        h = self.frame(x)
        stats = torch.cat([h.mean(1), h.std(1)], dim=1)
        return F.normalize(self.proj(stats), dim=-1)


def get_centroids(emb):
    return emb.mean(1)


def get_cossim(emb, centroids):
    N, M, _ = emb.shape
    excl = (emb.sum(1, keepdim=True) - emb) / (M - 1)  # own speaker: centroid without this utterance
    sim = F.cosine_similarity(emb.unsqueeze(2), centroids.view(1, 1, N, -1), dim=-1)
    own = F.cosine_similarity(emb, excl, dim=-1).unsqueeze(-1)
    cossim = torch.where(torch.eye(N, dtype=torch.bool).unsqueeze(1), own, sim)
    return cossim + 1e-6


class GE2ELoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(10.0))
        self.b = nn.Parameter(torch.tensor(-5.0))

    def forward(self, emb):  # emb: (N speakers, M utterances, dim)
        N, M, _ = emb.shape
        sim = self.w.clamp(min=1e-6) * get_cossim(emb, get_centroids(emb)) + self.b
        target = torch.arange(N).repeat_interleave(M)
        return F.cross_entropy(sim.reshape(N * M, N), target)


def equal_error_rate(scores, labels):
    order = scores.argsort(descending=True)
    labels = labels[order]
    tp = labels.cumsum(0)
    fp = (1 - labels).cumsum(0)
    frr = 1 - tp / labels.sum()
    far = fp / (1 - labels).sum()
    i = (frr - far).abs().argmin()
    return ((frr[i] + far[i]) / 2).item()


@torch.no_grad()
def validate(encoder, speakers):
    encoder.eval()
    enrol = torch.stack([encoder(torch.stack([utterance(s) for _ in range(5)])).mean(0) for s in speakers])
    enrol = F.normalize(enrol, dim=-1)
    tests, owners = [], []
    for k, s in enumerate(speakers):
        tests.append(encoder(torch.stack([utterance(s) for _ in range(5)])))
        owners += [k] * 5
    scores = torch.cat(tests) @ enrol.T
    labels = (torch.tensor(owners).unsqueeze(1) == torch.arange(len(speakers))).float()
    return equal_error_rate(scores.flatten(), labels.flatten())


def main():
    train_spk, val_spk = make_speakers(60), make_speakers(20)
    encoder, criterion = SpeakerEncoder(), GE2ELoss()
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(criterion.parameters()), lr=1e-3)
    for epoch in range(5):
        encoder.train()
        tot = 0.0
        for step in range(40):
            batch_spk = random.sample(train_spk, N_SPK)
            x = torch.stack([utterance(s) for s in batch_spk for _ in range(M_UTT)])
            emb = encoder(x).view(N_SPK, M_UTT, -1)
            loss = criterion(emb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item()
        print(f"epoch {epoch}: ge2e_loss {tot / 40:.4f}  val_EER {validate(encoder, val_spk):.3f}")


if __name__ == "__main__":
    main()
