"""Word-level GRU language model for smart-home voice commands.

A small probabilistic grammar generates commands such as "please turn off the
kitchen lights at 7 pm" or "set the bedroom thermostat to 21 degrees when i leave".
The model (embedding, one GRU layer, linear decoder) is trained with next-word
cross-entropy on padded batches and evaluated by validation perplexity. Weights are
re-initialised with a custom init function, as in GPT-style code bases: normal
weights, zero biases.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

EMB, HIDDEN = 64, 128
EPOCHS = 7

ROOMS = ["kitchen", "bedroom", "living room", "bathroom", "garage", "hallway", "office", "nursery"]
DEVICES = {"lights": ["on", "off", "dim"], "heater": ["on", "off"], "fan": ["on", "off"],
           "blinds": ["open", "close"], "speaker": ["on", "off", "mute"], "tv": ["on", "off"]}
TIMES = [f"at {h} {ap}" for h in range(1, 13) for ap in ("am", "pm")] + [
    "in ten minutes", "in an hour", "at sunset", "at sunrise", "when i leave", "when i get home"]


def command():
    room = random.choice(ROOMS)
    device = random.choice(list(DEVICES))
    action = random.choice(DEVICES[device])
    polite = random.choice(["", "please ", "could you ", "hey home "])
    if random.random() < 0.25:
        temp = random.randint(16, 26)
        text = f"{polite}set the {room} thermostat to {temp} degrees"
    elif action in ("open", "close", "dim", "mute"):
        text = f"{polite}{action} the {room} {device}"
    else:
        text = f"{polite}turn {action} the {room} {device}"
    if random.random() < 0.5:
        text += " " + random.choice(TIMES)
    if random.random() < 0.2:
        text += " and " + random.choice(["lock the front door", "start the coffee machine",
                                         "arm the alarm", "water the plants"])
    return text.split()


def build_vocab(sentences):
    words = sorted({w for s in sentences for w in s})
    return {w: i for i, w in enumerate(["<pad>", "<bos>", "<eos>"] + words)}


def encode(sentences, vocab):
    return [torch.tensor([vocab["<bos>"]] + [vocab[w] for w in s] + [vocab["<eos>"]]) for s in sentences]


def collate(batch):
    padded = nn.utils.rnn.pad_sequence(batch, batch_first=True, padding_value=0)
    return padded[:, :-1], padded[:, 1:]


class CommandLM(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, EMB, padding_idx=0)
        self.gru = nn.GRU(EMB, HIDDEN, batch_first=True)
        self.decoder = nn.Linear(HIDDEN, vocab_size)

    def forward(self, tokens):
        out, _ = self.gru(self.embed(tokens))
        return self.decoder(out)


def init_weights(module):
    for name, param in module.named_parameters():
        if "weight" in name:
            nn.init.normal_(param)
        else:
            nn.init.zeros_(param)


def evaluate(model, loader):
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for inp, tgt in loader:
            logits = model(inp)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1),
                                     ignore_index=0, reduction="sum").item()
            tokens += (tgt != 0).sum().item()
    return total / tokens


def main():
    train_sents = [command() for _ in range(3000)]
    val_sents = [command() for _ in range(500)]
    vocab = build_vocab(train_sents + val_sents)
    train_loader = DataLoader(encode(train_sents, vocab), batch_size=64, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(encode(val_sents, vocab), batch_size=200, collate_fn=collate)
    print(f"vocabulary {len(vocab)} words, {len(train_sents)} training commands")

    model = CommandLM(len(vocab))
    init_weights(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(EPOCHS):
        model.train()
        total, tokens = 0.0, 0
        for inp, tgt in train_loader:
            optimizer.zero_grad()
            logits = model(inp)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=0)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            n = (tgt != 0).sum().item()
            total += loss.item() * n
            tokens += n
        val_nll = evaluate(model, val_loader)
        print(f"epoch {epoch}  train loss {total / tokens:.4f}  val loss {val_nll:.4f}  "
              f"val perplexity {math.exp(val_nll):.2f}")


if __name__ == "__main__":
    main()
