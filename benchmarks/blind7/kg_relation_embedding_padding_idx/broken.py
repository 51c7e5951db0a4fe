"""Knowledge-graph link prediction with a bilinear (RESCAL-style) model, 1-N scoring.

Each relation is a learned d x d matrix; a (head, relation) query scores every
entity as a tail, trained with cross-entropy over all entities (label smoothing).
Synthetic graph: 300 entities and 5 relations generated from latent entity
factors; relation ids are ordered by frequency, so relation 0 ("part_of") is the
most common one (a third of all triples). 85% of triples for training, the rest
for a filtered-ranking test (MRR, Hits@10), overall and per relation.
"""
import random
from collections import defaultdict

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_ENT = 300
RELATIONS = ["part_of", "located_in", "works_with", "supplies", "competes_with"]
TAILS_PER_QUERY = [4, 2, 2, 2, 2]


def make_graph():
    z = torch.randn(N_ENT, 8)
    triples = []
    for r, k in enumerate(TAILS_PER_QUERY):
        m = torch.randn(8, 8)
        scores = z @ m @ z.T
        scores.fill_diagonal_(-1e9)
        tails = scores.topk(k, dim=1).indices
        triples += [(h, r, t) for h in range(N_ENT) for t in tails[h].tolist()]
    random.shuffle(triples)
    cut = int(0.85 * len(triples))
    return triples[:cut], triples[cut:]


class BilinearKGE(nn.Module):
    def __init__(self, n_ent, n_rel, d=16):
        super().__init__()
        self.d = d
        self.E = nn.Embedding(n_ent, d)
        self.R = nn.Embedding(n_rel, d * d, padding_idx=0)  # one d x d matrix per relation
        nn.init.normal_(self.E.weight, std=0.3)
        self.R.weight.data.mul_(0.3 / d ** 0.5)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, r):
        e1 = self.dropout(self.E(h))
        x = torch.bmm(e1.unsqueeze(1), self.R(r).view(-1, self.d, self.d)).squeeze(1)
        return x @ self.E.weight.T  # logits over all tail entities


@torch.no_grad()
def evaluate(model, test, known):
    model.eval()
    h = torch.tensor([a for a, _, _ in test])
    r = torch.tensor([b for _, b, _ in test])
    t = torch.tensor([c for _, _, c in test])
    scores = model(h, r)
    for i, (a, b, c) in enumerate(test):  # filtered setting: hide the other true tails
        others = [x for x in known[(a, b)] if x != c]
        scores[i, others] = -1e9
    order = scores.sort(dim=1, descending=True, stable=True).indices
    ranks = (order == t.unsqueeze(1)).float().argmax(1) + 1
    rr = 1.0 / ranks.float()
    per_rel = {RELATIONS[k]: rr[r == k].mean().item() for k in range(len(RELATIONS))}
    return rr.mean().item(), (ranks <= 10).float().mean().item(), per_rel


def main():
    train, test = make_graph()
    known = defaultdict(set)
    for h, r, t in train + test:
        known[(h, r)].add(t)
    h_tr = torch.tensor([h for h, _, _ in train])
    r_tr = torch.tensor([r for _, r, _ in train])
    t_tr = torch.tensor([t for _, _, t in train])
    print(f"{len(train)} training triples, {len(test)} test triples")

    loader = DataLoader(TensorDataset(h_tr, r_tr, t_tr), batch_size=128, shuffle=True)
    model = BilinearKGE(N_ENT, len(RELATIONS))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    for epoch in range(60):
        model.train()
        tot, n = 0.0, 0
        for h, r, t in loader:
            loss = criterion(model(h, r), t)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(h)
            n += len(h)
        if epoch % 10 == 9:
            mrr, hits10, per_rel = evaluate(model, test, known)
            rel = "  ".join(f"{k} {v:.3f}" for k, v in per_rel.items())
            print(f"epoch {epoch + 1}: train_loss {tot / n:.4f}  test MRR {mrr:.3f}  Hits@10 {hits10:.3f}  "
                  f"| MRR per relation: {rel}")


if __name__ == "__main__":
    main()
