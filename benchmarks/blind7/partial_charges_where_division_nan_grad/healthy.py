"""Learning atomic partial charges: the masked Coulomb term divides by a safe distance, no NaN grads (fixed).

A per-atom MLP predicts a charge from the atom type and its bonded neighbours;
charges are shifted so each molecule stays neutral. The loss compares the
dipole moment sum(q_i r_i) and the Coulomb energy sum_{i<j} q_i q_j / r_ij with
reference values. Synthetic molecules of 4-9 atoms (H, C, N, O), padded to 9
atoms per molecule in a batch.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

ELEMENTS = ["H", "C", "N", "O"]
ELECTRONEG = torch.tensor([2.20, 2.55, 3.04, 3.44])
MAX_ATOMS, BOND = 9, 1.6


def make_molecule():
    n = random.randint(4, MAX_ATOMS)
    types = torch.tensor([random.choice([0, 0, 1, 1, 2, 3]) for _ in range(n)])
    pos = [torch.zeros(3)]
    while len(pos) < n:  # grow a chain/branch with ~1.2 A bonds
        anchor = pos[random.randrange(len(pos))]
        d = torch.randn(3)
        cand = anchor + 1.2 * d / d.norm()
        if all((cand - p).norm() > 1.0 for p in pos):
            pos.append(cand)
    pos = torch.stack(pos)
    r = torch.cdist(pos, pos)
    bonded = (r < BOND) & ~torch.eye(n, dtype=torch.bool)
    # reference charges: electronegativity equalisation over bonds
    chi = ELECTRONEG[types]
    q = 0.25 * ((chi.unsqueeze(0) - chi.unsqueeze(1)) * bonded).sum(1)
    q = q - q.mean()
    iu = torch.triu_indices(n, n, 1)
    energy = (q[iu[0]] * q[iu[1]] / r[iu[0], iu[1]]).sum()
    dipole = (q.unsqueeze(1) * pos).sum(0)
    feats = torch.cat([nn.functional.one_hot(types, 4).float(),
                       (bonded.float() @ nn.functional.one_hot(types, 4).float())], dim=1)  # type + neighbour counts
    return feats, pos, q, energy, dipole


class MoleculeDataset(Dataset):
    def __init__(self, n):
        self.items = [make_molecule() for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    B = len(batch)
    feats = torch.zeros(B, MAX_ATOMS, 8)
    pos = torch.zeros(B, MAX_ATOMS, 3)
    q = torch.zeros(B, MAX_ATOMS)
    mask = torch.zeros(B, MAX_ATOMS, dtype=torch.bool)
    for b, (f, p, qq, _, _) in enumerate(batch):
        n = len(f)
        feats[b, :n], pos[b, :n], q[b, :n], mask[b, :n] = f, p, qq, True
    energy = torch.stack([e for *_, e, _ in batch])
    dipole = torch.stack([d for *_, d in batch])
    return feats, pos, mask, q, energy, dipole


class ChargeNet(nn.Module):
    def __init__(self, d_in=8, hidden=64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, feats, mask):
        q = self.mlp(feats).squeeze(-1) * mask
        q_mean = q.sum(1, keepdim=True) / mask.sum(1, keepdim=True)
        return (q - q_mean) * mask  # neutral molecules


def electrostatics(q, pos, mask):
    r = torch.cdist(pos, pos)
    eye = torch.eye(MAX_ATOMS, dtype=torch.bool).unsqueeze(0)
    pair = mask.unsqueeze(1) & mask.unsqueeze(2) & ~eye
    qq = q.unsqueeze(1) * q.unsqueeze(2)
    r_safe = torch.where(pair, r, torch.ones_like(r))  # no 0/0 in the branch torch.where discards
    e_pair = torch.where(pair, qq / r_safe, torch.zeros_like(r))
    energy = 0.5 * e_pair.sum((1, 2))
    dipole = (q.unsqueeze(-1) * pos).sum(1)
    return energy, dipole


def run_epoch(model, loader, optimizer=None):
    train = optimizer is not None
    model.train(train)
    tot, e_err, d_err, q_err, n_mol, n_atoms = 0.0, 0.0, 0.0, 0.0, 0, 0
    with torch.set_grad_enabled(train):
        for feats, pos, mask, q_ref, e_ref, d_ref in loader:
            q = model(feats, mask)
            energy, dipole = electrostatics(q, pos, mask)
            loss = ((dipole - d_ref) ** 2).sum(1).mean() + 10.0 * ((energy - e_ref) ** 2).mean()
            if train:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            tot += loss.item() * len(e_ref)
            e_err += (energy - e_ref).abs().sum().item()
            d_err += (dipole - d_ref).norm(dim=1).sum().item()
            q_err += ((q - q_ref).abs() * mask).sum().item()
            n_mol += len(e_ref)
            n_atoms += mask.sum().item()
    return tot / n_mol, e_err / n_mol, d_err / n_mol, q_err / n_atoms


def main():
    train_loader = DataLoader(MoleculeDataset(1500), batch_size=32, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(MoleculeDataset(400), batch_size=200, collate_fn=collate)
    model = ChargeNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(12):
        tr_loss, *_ = run_epoch(model, train_loader, optimizer)
        va_loss, e_mae, d_mae, q_mae = run_epoch(model, val_loader)
        print(f"epoch {epoch:2d}: train_loss {tr_loss:.5f}  val_loss {va_loss:.5f}  energy_MAE {e_mae:.4f}  "
              f"dipole_MAE {d_mae:.4f}  charge_MAE {q_mae:.4f} e")


if __name__ == "__main__":
    main()
