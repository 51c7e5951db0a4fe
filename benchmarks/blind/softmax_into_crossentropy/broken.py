"""Digit-style classifier whose network ends in a Softmax layer, trained with nn.CrossEntropyLoss."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

# synthetic "digits": 10 classes, 64 features, each class a noisy prototype
n_classes, n_features = 10, 64
prototypes = torch.randn(n_classes, n_features)
labels = torch.randint(0, n_classes, (4000,))
images = prototypes[labels] + 1.5 * torch.randn(4000, n_features)
train_x, train_y = images[:3200], labels[:3200]
test_x, test_y = images[3200:], labels[3200:]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(n_features, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, n_classes)
        self.relu = nn.ReLU()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.fc3(x)
        return self.softmax(x)


model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(8):
    perm = torch.randperm(len(train_x))
    total = 0.0
    for i in range(0, len(train_x), 64):
        idx = perm[i:i + 64]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    print(f"epoch {epoch} loss = {total / len(train_x):.4f} test acc = {acc:.3f}")
