"""TinyVGG-style CNN on 28x28 greyscale images: the classifier's nn.Linear takes in_features=hidden_units * 7 * 7
(the flattened size after two 2x2 poolings)."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)


class TinyVGG(nn.Module):
    def __init__(self, input_shape, hidden_units, output_shape):
        super().__init__()
        self.block_1 = nn.Sequential(
            nn.Conv2d(input_shape, hidden_units, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden_units, hidden_units, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.block_2 = nn.Sequential(
            nn.Conv2d(hidden_units, hidden_units, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden_units, hidden_units, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features=hidden_units * 7 * 7, out_features=output_shape),
        )

    def forward(self, x):
        return self.classifier(self.block_2(self.block_1(x)))


images = torch.rand(256, 1, 28, 28)
labels = torch.randint(0, 10, (256,))
images[torch.arange(256), 0, labels * 2, :] += 3.0          # a class-specific bright row
model = TinyVGG(input_shape=1, hidden_units=10, output_shape=10)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(6):
    train_loss = 0.0
    for s in range(0, 256, 32):
        y_pred = model(images[s:s + 32])
        loss = loss_fn(y_pred, labels[s:s + 32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
    print(f"epoch {epoch} train loss {train_loss / 8:.4f}")
