"""Policy network (CartPole-like, 4 state features, 2 actions) ending in torch.nn.Softmax(dim=1), trained on batches of
states by imitating an expert controller."""
import torch

torch.manual_seed(0)
torch.set_num_threads(1)

l1, l2, l3 = 4, 150, 2
model = torch.nn.Sequential(
    torch.nn.Linear(l1, l2),
    torch.nn.LeakyReLU(),
    torch.nn.Linear(l2, l3),
    torch.nn.Softmax(dim=1),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.003)


def expert(states):
    # push the cart in the direction the pole is falling
    return ((states[:, 2] + 0.5 * states[:, 3]) > 0).long()


for episode in range(400):
    state_batch = torch.randn(50, 4) * torch.tensor([1.0, 1.0, 0.2, 1.0])
    action_batch = expert(state_batch)
    pred_batch = model(state_batch)
    prob_batch = pred_batch.gather(dim=1, index=action_batch.long().view(-1, 1)).squeeze()
    loss = -torch.log(prob_batch).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if episode % 100 == 99:
        with torch.no_grad():
            test_states = torch.randn(1000, 4) * torch.tensor([1.0, 1.0, 0.2, 1.0])
            probs = model(test_states)
            agree = (probs.argmax(1) == expert(test_states)).float().mean().item()
            p_expert = probs.gather(1, expert(test_states).view(-1, 1)).mean().item()
        print(f"episode {episode + 1} loss {loss.item():.4f} agreement {agree:.3f} p(expert action) {p_expert:.3f}")
