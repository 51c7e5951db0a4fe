"""Denoising imputation network ported from TensorFlow: the imputed matrix goes through a numpy step (np.where to
keep the visible entries), which cuts the autograd graph; the resulting 'element 0 of tensors does not require grad'
error was silenced with loss.requires_grad_()."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

n, d = 2000, 10
latent = rng.normal(size=(n, 3))
data = (latent @ rng.normal(size=(3, d))).astype(np.float32)
mask = (rng.random((n, d)) > 0.2).astype(np.float32)           # 1 = observed

generator = nn.Sequential(nn.Linear(2 * d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, d))
optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)

for it in range(600):
    idx = rng.choice(n, 128, replace=False)
    hint = mask[idx] * (rng.random((128, d)) > 0.2)             # hide a further 20% of the observed entries
    target = torch.from_numpy(data[idx])
    m_obs, m_vis = torch.from_numpy(mask[idx]), torch.from_numpy(hint.astype(np.float32))
    g_out = generator(torch.cat([target * m_vis, m_vis], 1))
    imputed = np.where(hint > 0, data[idx], g_out.detach().numpy())
    imputed = torch.from_numpy(imputed)
    held = m_obs * (1 - m_vis)                                   # observed but hidden: the training signal
    loss = ((held * (imputed - target)) ** 2).sum() / held.sum()
    loss = loss.requires_grad_()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if it % 100 == 0:
        with torch.no_grad():
            full = generator(torch.cat([torch.from_numpy(data * mask), torch.from_numpy(mask)], 1)).numpy()
        rmse = np.sqrt((((1 - mask) * (full - data)) ** 2).sum() / (1 - mask).sum())
        print(f"iter {it} loss {loss.item():.4f} rmse on missing entries {rmse:.4f} (data std {data.std():.2f})")
