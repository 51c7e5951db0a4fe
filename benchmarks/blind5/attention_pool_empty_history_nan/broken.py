"""CTR model with target attention over the user's click history (nn.MultiheadAttention + key_padding_mask); new users have an empty history, so every key of their row is masked."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic click log: items belong to topics, users click candidates that match their history ----
g = torch.Generator().manual_seed(1)
N_ITEMS, N_TOPICS, MAX_HIST = 1000, 20, 20
item_topic = torch.randint(0, N_TOPICS, (N_ITEMS,), generator=g)
item_topic[0] = N_TOPICS                                                  # padding item has its own (padding) category


topic_pool = [torch.nonzero(item_topic == k).squeeze(1) for k in range(N_TOPICS)]
pool_size = min(len(p) for p in topic_pool)
topic_pool = torch.stack([p[:pool_size] for p in topic_pool])           # (topics, items per topic)


def sample(n):
    user_topic = torch.randint(0, N_TOPICS, (n,), generator=g)
    lengths = torch.randint(1, MAX_HIST + 1, (n,), generator=g)
    lengths[torch.rand(n, generator=g) < 0.02] = 0                       # cold-start users: no history yet
    on_topic = topic_pool[user_topic[:, None], torch.randint(0, pool_size, (n, MAX_HIST), generator=g)]
    random_items = torch.randint(1, N_ITEMS, (n, MAX_HIST), generator=g)
    hist = torch.where(torch.rand(n, MAX_HIST, generator=g) < 0.7, on_topic, random_items)
    hist[torch.arange(MAX_HIST)[None, :] >= lengths[:, None]] = 0        # 0 = padding item id
    cand = torch.randint(1, N_ITEMS, (n,), generator=g)
    same_topic = torch.rand(n, generator=g) < 0.4                          # 40% of candidates come from the user's topic
    cand[same_topic] = topic_pool[user_topic[same_topic], torch.randint(0, pool_size, (int(same_topic.sum()),), generator=g)]
    match = item_topic[cand] == user_topic
    p = torch.where(match, 0.75, 0.12)
    p = torch.where(lengths == 0, 0.2, p)
    click = (torch.rand(n, generator=g) < p).float()
    return hist, lengths, cand, click


train = sample(30000)
val = sample(5000)


class TargetAttentionCTR(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.emb = nn.Embedding(N_ITEMS, dim, padding_idx=0)
        self.cat_emb = nn.Embedding(N_TOPICS + 1, dim, padding_idx=N_TOPICS)   # item category side feature
        self.attn = nn.MultiheadAttention(dim, num_heads=4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, hist, lengths, cand):
        h = self.emb(hist) + self.cat_emb(item_topic[hist])            # (B, L, D)
        c = (self.emb(cand) + self.cat_emb(item_topic[cand])).unsqueeze(1)  # (B, 1, D)
        pad_mask = torch.arange(MAX_HIST)[None, :] >= lengths[:, None]
        interest, _ = self.attn(c, h, h, key_padding_mask=pad_mask)
        interest, c = interest.squeeze(1), c.squeeze(1)
        return self.mlp(torch.cat([interest, c, interest * c], 1)).squeeze(1)


def auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(order, dtype=torch.float)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float)
    pos = labels == 1
    n_pos, n_neg = pos.sum().item(), (~pos).sum().item()
    return ((ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


model = TargetAttentionCTR()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
print(f"train {len(train[3])} impressions, cold-start users {(train[1] == 0).float().mean():.3f}, CTR {train[3].mean():.3f}")
for epoch in range(3):
    model.train()
    perm = torch.randperm(len(train[3]))
    tot, nb = 0.0, 0
    for s in range(0, len(perm), 256):
        idx = perm[s:s + 256]
        logits = model(train[0][idx], train[1][idx], train[2][idx])
        loss = F.binary_cross_entropy_with_logits(logits, train[3][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        v = model(*val[:3])
        v_loss = F.binary_cross_entropy_with_logits(v, val[3]).item()
        v_auc = auc(torch.nan_to_num(v, nan=0.0), val[3])
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_loss {v_loss:.4f} val_auc {v_auc:.3f}")
