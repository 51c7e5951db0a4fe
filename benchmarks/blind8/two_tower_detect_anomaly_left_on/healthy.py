"""Two-tower retrieval model trained with in-batch negatives, anomaly detection switched off.

Synthetic shop: 800 users and 1,200 items with hidden taste vectors; every user has
a few dozen purchases drawn from its taste and the items' popularity. The user tower
embeds the user id, age band, country and device; the item tower embeds the item id,
category and brand. Both towers end in an MLP and an L2 normalisation; training uses the
sampled-softmax loss over the other items of the batch (temperature 0.1). Evaluation
holds out each user's last purchase and reports HR@10 and NDCG@10 over the catalogue.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_USERS, N_ITEMS, N_CATS, N_BRANDS, N_AGES, N_COUNTRIES, N_DEVICES = 800, 1200, 24, 60, 6, 10, 3
EMB, OUT = 32, 32
EPOCHS = 4
TEMPERATURE = 0.1


def make_shop():
    item_cat = torch.randint(0, N_CATS, (N_ITEMS,))
    item_brand = torch.randint(0, N_BRANDS, (N_ITEMS,))
    cat_vec, brand_vec = torch.randn(N_CATS, 8), torch.randn(N_BRANDS, 8)
    item_vec = cat_vec[item_cat] + 0.5 * brand_vec[item_brand] + 0.4 * torch.randn(N_ITEMS, 8)
    popularity = 0.8 * torch.randn(N_ITEMS)
    user_age = torch.randint(0, N_AGES, (N_USERS,))
    user_country = torch.randint(0, N_COUNTRIES, (N_USERS,))
    user_device = torch.randint(0, N_DEVICES, (N_USERS,))
    age_vec, country_vec = torch.randn(N_AGES, 8), torch.randn(N_COUNTRIES, 8)
    user_vec = 0.6 * age_vec[user_age] + 0.4 * country_vec[user_country] + 0.8 * torch.randn(N_USERS, 8)
    scores = user_vec @ item_vec.T + popularity
    histories = []
    for u in range(N_USERS):
        n = random.randint(15, 40)
        histories.append(torch.multinomial(F.softmax(scores[u], 0), n, replacement=False).tolist())
    return (item_cat, item_brand), (user_age, user_country, user_device), histories


class Tower(nn.Module):
    def __init__(self, cardinalities):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, EMB) for c in cardinalities)
        self.mlp = nn.Sequential(nn.Linear(EMB * len(cardinalities), 128), nn.LayerNorm(128), nn.ReLU(),
                                 nn.Linear(128, 64), nn.LayerNorm(64), nn.ReLU(),
                                 nn.Linear(64, OUT))

    def forward(self, *ids):
        x = torch.cat([emb(i) for emb, i in zip(self.embeddings, ids)], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class TwoTower(nn.Module):
    def __init__(self, item_features, user_features):
        super().__init__()
        self.register_buffer("item_features", torch.stack(item_features, dim=1))
        self.register_buffer("user_features", torch.stack(user_features, dim=1))
        self.user_tower = Tower([N_USERS, N_AGES, N_COUNTRIES, N_DEVICES])
        self.item_tower = Tower([N_ITEMS, N_CATS, N_BRANDS])

    def users(self, u):
        return self.user_tower(u, *self.user_features[u].unbind(1))

    def items(self, i):
        return self.item_tower(i, *self.item_features[i].unbind(1))


def evaluate(model, train_items, held_out):
    model.eval()
    with torch.no_grad():
        all_items = model.items(torch.arange(N_ITEMS))
        scores = model.users(torch.arange(N_USERS)) @ all_items.T
        for u, seen in enumerate(train_items):
            scores[u, seen] = -float("inf")
        target_scores = scores[torch.arange(N_USERS), held_out]
        rank = (scores > target_scores.unsqueeze(1)).sum(1)
        hit = (rank < 10).float()
        ndcg = hit / torch.log2(rank.float() + 2)
    return hit.mean().item(), ndcg.mean().item()


def main():
    item_features, user_features, histories = make_shop()
    train_pairs, train_items, held_out = [], [], []
    for u, hist in enumerate(histories):
        train_items.append(hist[:-1])
        held_out.append(hist[-1])
        train_pairs += [(u, i) for i in hist[:-1]]
    pairs = torch.tensor(train_pairs)
    held_out = torch.tensor(held_out)
    loader = DataLoader(TensorDataset(pairs[:, 0], pairs[:, 1]), batch_size=128, shuffle=True)
    print(f"{len(pairs)} training purchases, {N_USERS} held-out purchases")

    model = TwoTower(item_features, user_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(EPOCHS):
        model.train()
        total, batches = 0.0, 0
        for users, items in loader:
            optimizer.zero_grad()
            logits = model.users(users) @ model.items(items).T / TEMPERATURE
            # items bought twice in one batch are not negatives of each other
            same = (items.unsqueeze(0) == items.unsqueeze(1)) & ~torch.eye(len(items), dtype=torch.bool)
            logits = logits.masked_fill(same, -1e9)
            loss = F.cross_entropy(logits, torch.arange(len(users)))
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        hr, ndcg = evaluate(model, train_items, held_out)
        print(f"epoch {epoch}  train loss {total / batches:.4f}  HR@10 {hr:.4f}  NDCG@10 {ndcg:.4f}")


if __name__ == "__main__":
    main()
