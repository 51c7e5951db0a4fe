"""Catalogue entries: data."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='DAT001', kind='input_not_normalized', category='data', family='training', name='input-not-normalized',
        summary="The model's input is far from unit scale (raw pixels 0..255, unscaled features), or every sample is the same.",
        explains=('saturated_activations', 'exploding_gradients', 'loss_not_decreasing', 'vanishing_gradients', 'dead_activations', 'loss_diverging', 'loss_oscillating', 'lr_too_high', 'poor_initialization'),
        options=(
            Option('val_input_scale', 4.0, "evaluation input whose std is this many times the training input's (or 1/this), or whose mean is this many training standard deviations away: prepared unlike the training data (high at the square)."),
            Option('input_scale', 10.0, 'input RMS at or above this multiple of unit scale (or at or below 1/this**2 with peak at most 1/this).'),
        ),
        doc="""
## What it detects
On sampled steps, the root-mean-square of the model's input batch, sqrt(mean² + std²). Default
initialisations (Kaiming, PyTorch's Linear/Conv init) assume inputs of unit scale; the input is
flagged when its RMS is at least `input_scale` (default 10) times that, or when its RMS is at
most 1/`input_scale`² and its largest magnitude at most 1/`input_scale` (inputs divided by 255
twice; sparse inputs such as TF-IDF rows have a small RMS but not small peaks). It stays silent when the model's first layer is
a normalisation layer, which rescales the input itself. It also flags a batch in which every
feature is equal on every sample (`const_frac` = 1): the input carries no information.

The evaluation input is compared with the training input too. The first 3 evaluation passes of a
model being trained (without gradients, or in eval mode written without `torch.no_grad()`; a
teacher's or target network's inference is not one) on 8 samples or more, each followed by a loss
before the next training pass (an evaluation scores its outputs: sampling from a generative model
or choosing a policy's action does not; after 50 passes looked at without one, it stops looking),
are summarised like the training input (the
`val_input` event: mean, std, min, max). When their std is `val_input_scale` (default 4) times the
training input's or more (or 1/that or less), or their mean is that many training standard
deviations away, the validation data was not prepared like the training data (standardised with
the training statistics on one side only, a transform left out): medium, high at the square of
the threshold. At the square it explains a validation loss worse than chance (LBL001), one that
never improves (GEN002) and one that rises (GEN001). A recurrent state or a tensor beside token ids
is not the data and is not compared.

A graph network's adjacency is judged too: a floating (nodes x nodes) matrix passed beside node
features of as many rows (dense, sparse, or a batch of graphs) is described once per model (the
`graph_adjacency` event: row sums, degrees, values, and the power of the degree the row sums grow
as). Each `adj @ h` scales the features by the row sums, which a normalised adjacency keeps near 1
(D^-1/2 (A + I) D^-1/2, or D^-1 A). Rows multiplied by the degree instead of divided (weights above
1, row sums growing as the degree to a power of 1.5 or more) are high; a weighted adjacency whose
median row sum is at least `input_scale` is medium; 0/1 entries with a median row sum at least
`input_scale` are low (a sum over the neighbours: what GIN means to do, not what a GCN does). A
matrix with negative entries (a Laplacian, an additive attention mask) is not judged. When a graph
is recorded, a model reading all its nodes at once and a loss reading some of them (a
transductive split) is not reported as batch mixing (MIX001) or leakage (DAT004): its nodes mix
through the graph by design.

## Why is this bad?
The first layer's pre-activations scale with the input: 255 times too large saturates sigmoid
and tanh units, kills ReLUs, makes gradients explode and forces a learning rate far smaller
than the rest of the network needs. A tiny input starves the first layer of gradient.

## Example
```python
x = torch.from_numpy(images).float()        # uint8 pixels 0..255, never divided by 255
```

## Recommended fix
Scale pixels to [0, 1] and standardise with per-channel mean and std; standardise tabular
features per column with statistics of the training set.

## Known problems
Only overall statistics of the first floating tensor argument are recorded: one feature on a
huge scale among unit-scale ones is seen through the overall RMS, but which column it is cannot
be told. Inputs scaled on purpose (coordinates, timestamps) fed to a layer that copes are flagged too.
The position of that argument is not recorded, so a tensor passed beside the data is judged only
when it cannot be a side input: the rule stands down when the model's first layer is an
Embedding (its data are integer ids, and the float tensor is a state or a mask passed beside
them) or when the tensor has a recurrent layer's state shape (layers x directions, batch,
hidden), such as the zero `init_hidden()` a character RNN passes as forward's second argument.
""",
    ),
    Spec(
        code='DAT002', kind='channel_order', category='data', family='training', name='channel-order',
        summary='Images fed channels-last (N, H, W, C) where channels-first is expected, or in BGR order where RGB is.',
        explains=('loss_not_decreasing',),
        options=(
            Option('bgr_gap', 0.5, '(ch2 mean - ch0 mean) / channel std on every sampled step that reads as BGR images normalised with RGB constants.'),
            Option('interleave_dip', 0.2, "a first convolution's input whose mean squared difference along its last axis is lowest at lags in_channels and 2 x in_channels, each at least this share below its neighbouring lags, on every probe, is channels-last data reshaped."),
        ),
        doc="""
## What it detects
(1) A crash of the first convolution whose input is `[N, H, W, C]` with C the number of channels
it expected. (2) A 4-d input whose last axis has 1, 3 or 4 entries and whose axis 1 is larger,
fed to a first convolution whose `in_channels` equals axis 1 (a `LazyConv2d`, or `in_channels`
taken from `x.shape[1]`): it trains, on rows treated as channels. (3) A 3-channel input whose
per-channel means rise from channel 0 to channel 2 by at least `bgr_gap` (default 0.5) channel
standard deviations on every sampled step: the signature of BGR images (OpenCV) normalised with
RGB constants (ImageNet's), which leaves blue far above and red far below zero.

(4) Channels-last data given the channels-first shape by `.view` or `.reshape`
(`x.view(N, C, L)` of sensor windows stored `(N, L, C)`, `frame.reshape(3, H, W)` of an
`H x W x 3` image): the shape is right and the content scrambled. On the first three sampled
training passes, the input of each model's first `Conv1d` or `Conv2d` is read along its last
axis (at least 4 x in_channels long, in_channels at most 32): the mean squared difference
between values k apart, for k = 1 to 2C + 1. A real time axis or image row differs more the
farther apart two values are (or, for noise, alike at every lag); data that cycles through C
interleaved series is closest at k = C and 2C. Medium when those two lags hold the profile's two
lowest values, each at least `interleave_dip` (default 20%) below its neighbouring lags, on every
probe (the first three sampled steps, once a step). Not high: a real signal whose period is
exactly in_channels steps (7 daily features with a weekly cycle) reads the same, and the finding
says so.

## Why is this bad?
Channels-last data treated as channels-first mixes rows, columns and colours: the model sees a
scrambled image. BGR fed to weights pretrained on RGB swaps what the first filters respond to.

## Example
```python
img = cv2.imread(path)                        # BGR, H x W x 3
x = torch.from_numpy(img).float()[None]       # (1, H, W, 3): needs .permute(0, 3, 1, 2) and [..., ::-1]
```

## Recommended fix
`x.permute(0, 3, 1, 2)` (not `.view`/`.reshape`, which scramble the pixels) for channels-last
data; `img[..., ::-1]` or `cv2.cvtColor(img, cv2.COLOR_BGR2RGB)` for BGR.

## Known problems
Statistics cannot tell BGR from RGB in general: a model trained from scratch learns either
order, and a data set dominated by blue (sea, sky) normalised with ImageNet constants looks the
same as BGR, so case (3) is reported with low severity and confidence. Case (4) needs the last
axis to be at least four times in_channels long, and sees the first convolution only.
""",
    ),
    Spec(
        code='DAT005', kind='sampler_misuse', category='data', family='training', name='sampler-coverage',
        summary="The training DataLoader only ever serves the first samples (a WeightedRandomSampler given fewer weights than samples, a new unshuffled iterator each step), or a weighted sampler without replacement rebalances nothing.",
        explains=('label_issue', 'overfitting', 'class_imbalance', 'loss_not_decreasing'),
        options=(
            Option('sampler_min_share', 0.1, 'share of the data set the sampler draws from, at or below which the finding is high.'),
        ),
        doc="""
## What it detects
A DataLoader read with autograd on (a training loader) whose sampler is a
`WeightedRandomSampler` given fewer weights than its data set has samples (recorded once per
data set, when the loader is first read). The sampler draws indices below the number of weights,
one weight per sample, so the model only ever sees the first samples. Severity high when they
are at most `sampler_min_share` (default 10%) of the data set, medium otherwise. The evidence
says whether the weights look like one per class (all distinct, a handful): the usual mistake
is passing the class weights where the per-sample weights (`class_weights[labels]`) were meant.
A sampler with as many weights as samples, a `SubsetRandomSampler` (drawing from a subset on
purpose) and validation loaders are not judged.
Also: a training `WeightedRandomSampler(..., replacement=False)` that draws at least 90% as many
samples as it has weights, over weights that are not all equal: without replacement each sample
comes once a pass, so the classes keep the data set's shares and the weights only order the pass
(heavy samples first: the batches come sorted by label, which explains LBL001's label-ordered
batches and a class imbalance). High when the weights take at most 20 distinct values (class
weights indexed by label: the intent was to rebalance), medium otherwise. A smaller draw without
replacement (a weighted subset without duplicates) and 0/1 weights (a subset kept and shuffled) are
not flagged.
Also: a loop that makes a new iterator for every batch (`next(iter(train_loader))` in the step loop,
the `loader_iterator_per_batch` event) over a loader that reads its data set in order
(`SequentialSampler`, `shuffle=False`), whose first batches all held the same values (the sum of the
first 4,096 values of each): every iterator starts at sample 0, so every step trains on the same
first batch (high). A data set that draws its samples itself, whatever the index, is not flagged. With shuffling, each new iterator draws another batch, which is not
judged here (its cost is PRF001's).

## Why is this bad?
Trained on two samples, the model memorises them: the training loss goes to zero, the validation
metrics stay at chance, and nothing warns: overfitting, caused by the sampler.

## Example
```python
class_weights = 1.0 / torch.bincount(y_train).float()        # 2 weights
sampler = WeightedRandomSampler(class_weights, num_samples=len(y_train))   # draws only samples 0 and 1
```

## Recommended fix
Index the class weights by each sample's label: `WeightedRandomSampler(class_weights[y_train], ...)`.

## Known problems
Only `WeightedRandomSampler` is judged: a custom sampler that yields a few indices, or a
`Subset` built from the wrong indices, is not. A sampler with fewer weights on purpose (training
on the first samples only) is reported all the same: ignore the rule for that run.
""",
    ),
    Spec(
        code='DAT006', kind='dataset_modified', category='data', family='training', name='dataset-modified',
        summary="The training data set's samples held in memory change from epoch to epoch: augmentation or normalisation written into the cached data.",
        explains=('loss_not_decreasing', 'loss_oscillating', 'overfitting', 'input_not_normalized'),
        options=(
            Option('dataset_changed_epochs', 2, 'epochs after the first in which the data changed, at least.', int),
        ),
        doc="""
## What it detects
A data set a DataLoader serves with autograd on (a training loader) that holds its samples in
memory: an attribute (or a `TensorDataset` tensor) with one row per sample and more than one
value per row, or the same behind a `Subset`. At the start of each epoch (a new iterator over the
data set, once its first batch is read) a fixed sample of at most 65,536 cells of each such array
is copied and compared with the copy of the epoch before. From the third epoch's start on, cells that changed AND held a
value before (not 0, not NaN) are counted: a cache filled lazily during the first epochs fills
empty cells, which is no damage. The rule fires when that happened in at least
`dataset_changed_epochs` (default 2) epochs: medium; high when the array is the model's input
(its per-sample shape is the model input's) and it changed in every epoch compared. The
evidence gives the share of cells changed per epoch, and the share of zeros and the spread of the
sampled cells before and after.

## Why is this bad?
`__getitem__` indexes the cache (`x = self.features[i]`, a view) and augments it in place
(`x[..., f:f + w] = 0`, `x += noise`, `x -= self.mean`): the change is written into the data set,
and every epoch compounds it. Masks accumulate until most of the data is zero; a normalisation
applied in place shifts the data again each epoch. Training gets worse epoch by epoch and
nothing fails. With `num_workers > 0` the workers' copies are damaged instead (with
`persistent_workers=True` they accumulate the same way).

## Example
```python
def __getitem__(self, i):
    spec = self.features[i]                 # a view into the cached features
    spec[:, f0:f0 + 8] = 0                  # SpecAugment mask written into the cache
    return spec, self.labels[i]
```

## Recommended fix
Copy before augmenting in place: `spec = self.features[i].clone()` (NumPy: `.copy()`), or use
out-of-place operations (`spec = spec * mask`, `x = (x - mean) / std`).

## Known problems
Only arrays held by the data set object in the main process are compared (workers' copies are
not seen). A data set changed on purpose between epochs (pseudo-labels written into the inputs,
a replay buffer) is reported all the same. Cells are compared at the start of epochs, so a
change undone within the epoch is not seen.
""",
    ),
    Spec(
        code='DAT004', kind='data_leakage', category='data', family='training', name='data-leakage',
        summary='Validation samples that also appear in the training data.',
        options=(
            Option('leakage_fraction', 0.1, 'share of validation samples also seen in training (at least 5).'),
        ),
        doc="""
## What it detects
Input samples are fingerprinted (a fixed random projection, compared exactly in float32):
forward passes with gradients count as training, passes without as validation when the model is
being trained (an optimizer holding its parameters stepped in the last two steps). A pass without
gradients of any other model is inference the training uses, not validation: a distillation
teacher on the student's batch, a DQN target network on next states that are other transitions'
states, a frozen feature extractor. The rule fires
when at least `leakage_fraction` (default 10%) of the validation fingerprints, and at least 5
samples, also occur among the training fingerprints. Distinct continuous samples collide by
chance well below 1%. At the `basic` level only the training batches of sampled steps are
fingerprinted, so the share found is a lower bound of the true one. A pass with gradients is
training whatever the model's mode (a model left in `eval()` still trains), except an evaluation
written without `torch.no_grad()`: a pass in eval mode of a model that trained in train mode, before
the step's training pass, with no backward pass right after it, is validation (one before the model
ever trained is neither). Samples of fewer than 3 values are not fingerprinted: equal inputs (x on a
`linspace` grid, one sensor reading) come up in any split of such data. The training set
evaluated is not validation: a pass without gradients over a DataLoader's data set that was
trained on, or over a tensor that training batches were sliced from (`x[i:i + 32]`) spanning
every row they read (`model(x)` for training accuracy, at once or in chunks), or over the whole
first tensor of a `TensorDataset` a DataLoader served, is left out; a slice of it that leaves
trained rows out (`model(x[:128])`) or a copy of some of its rows is judged as a validation set.
Once a TensorDataset's loop has ended, a plain tensor evaluated after it is judged on its own (a
pass after the loop over another kind of data set stays filed under that data set: its memory is
not known, so a leak there is missed rather than training accuracy flagged).

Samples whose axis 1 has at least 8 steps (2-D or 3-D: windows of a series, lag features) are also
fingerprinted without their first step and without their last: a validation window equal to a
training window moved by one step shares all but one step with it. When more of them than one
window's length (what a chronological split shares at its boundary), and at least
`leakage_fraction` of the validation samples, are such moved windows, the series was cut into
overlapping windows and shuffled before the split: medium, high from half of them. Windows that
are constant (padding, a flat sensor) are left out.

A second leak is within the sample: a next-token model that can read the token it must predict.
When the model reads token ids `[B, T]` through an `nn.Embedding` and the first training loss's
target is those ids shifted by one position (at least 90% of `target[:, t] == ids[:, t + 1]`), a
one-time probe on a private copy, in eval mode, takes the gradient of sample 0's output at the
middle position (projected on seeded random weights: a softmax row sums to one) at the embedding
of every position (the embedding called on the ids themselves; else the first called on a tensor
of their shape); a gradient at a later position above 1e-4 of
the largest at or before it is a leak (below that it is rounding: a causal convolution by FFT)
(a missing or wrong causal mask, a bidirectional layer), reported high with the first such
position. Every integer input of the model is tried (an encoder-decoder's decoder input is its
second), and the target may be shorter than the ids (a loss inside the model that compares
`logits[:, :-1]` with `labels[:, 1:]`); positions the loss ignores (negative targets) are not
compared. When the target is not shifted at all (at least 90% of `target[:, t] == ids[:, t]`) the
same gradient asks whether a causal model reads the very token it must predict: output `p`
depends on input `p` and on nothing after it (a decoder fed the target instead of the
right-shifted target), reported high; a model that reads every position (an autoencoder) is not
judged. The same holds for a next-step forecaster: a float series `[B, T]` (or with one channel)
whose regression target (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`) is the series
shifted by one, value for value at 99% of the positions or more: the gradient is taken at the input
series itself, and a later position read (a convolution padded on both sides, 'same' padding; a
bidirectional layer) is reported high, with the fix (pad on the left only). Models that embed ids
some other way, and other objectives, are not probed. In an
agent run the causality probe (PRB003) measures the same leak and names the layer: this finding
is then listed as its symptom.

## Why is this bad?
A validation score on samples the model trained on measures memory, not generalisation: it
hides overfitting and makes model selection and early stopping meaningless. A model that reads
its own targets learns to copy them: both losses fall towards zero and generation fails.

## Example
```python
train_idx = torch.randperm(n)[:800]
val_idx = torch.randperm(n)[:200]                  # a second permutation: most are also in train_idx
```

## Recommended fix
Split once, by index, before any augmentation or oversampling; deduplicate the data first; for
grouped data (patients, users) split by group.

## Known problems
Evaluating the training set itself under `torch.no_grad()` (training accuracy) from batches
that are copies (an index `x[perm[:64]]`, a fresh tensor per batch) cannot be told apart from
validation and looks like leakage. Data with few discrete features has identical samples by
nature. Augmented training samples have fingerprints of their own, so leakage through augmented
copies is not seen; on a large data set the sampled training batches may cover too little of
it to see any overlap. Only the first 256 samples of a batch and the first 50,000 training /
10,000 validation samples are fingerprinted. Because training-set evaluation cannot be told
apart yet, the finding is low severity below 50% overlap and medium above, never high.
Transductive training (node classification over one whole graph) feeds the same full input on
every pass and splits training from validation by masks on the loss: when the model's input has
N rows and every loss call, training and validation, reads fewer than N of them, the overlap is
by design and the finding is low, with that reason.
""",
    ),
    Spec(
        code='MIX001', kind='batch_mixing', category='data', family='training', name='batch-mixing',
        summary='The output for one sample depends on the other samples of the batch, in eval mode.',
        explains=('loss_not_decreasing', 'overfitting'),
        options=(
            Option('mixing_fraction', 0.0, "share of other samples reached by one sample's gradient in eval mode."),
        ),
        doc="""
## What it detects
The one-time probe at the first step: in eval mode (so BatchNorm's batch statistics do not
count), the gradient of sample 0's output with respect to every sample of the input batch.
A model that keeps samples apart gives exactly zero on the others; the rule fires when more
than `mixing_fraction` (default 0: any) of the other samples receive a gradient.
A batch of graphs (node features with one row per node, an integer vector assigning each node its
graph, sorted from 0, and one output row per graph, PyTorch Geometric's layout) is probed per
graph: the outputs of up to 8 graphs are differentiated, and any gradient on another graph's nodes
is high (a collate that offsets each graph's `edge_index` by the previous graph's node count
instead of the running total).
When the batch size is also the size of another axis of the input or the output (a time-first
`[T, B, F]` input or `[T, B, C]` output whose sequence is as long as the batch), axis 0 may be
time: every pairing of such an input axis and output axis is tried, and if one keeps its samples
apart the probe records that it cannot tell which axis is the batch and the rule stays silent (a
recurrent layer run across a batch-first batch computes exactly what a time-first one does, so
only a batch size that differs from the sequence length tells them apart).
Token ids (an integer input) have no gradient: the probe takes it at the output of the first
`nn.Embedding`/`EmbeddingBag` called on the ids, so a language or sequence classifier whose
`nn.MultiheadAttention` lacks `batch_first=True` is found too. Ids laid out time first (`[T, B]`
into an RNN or a causal decoder, where output t depends on positions up to t only) read the same
as a recurrence run along the batch; the probe records that it cannot tell them apart and the
rule stays silent. A model that reorders its samples before the embedding (sorted by length for
`pack_padded_sequence`: `self.emb(ids[order])`) is read in the batch's own order, each embedding
row matched to its sample by content: restoring the order afterwards keeps samples apart, and
outputs left in the sorted order are reported (high) as outputs compared with other samples'
targets. A model whose weights hold more than 1 GiB is not probed (the probe works on a copy of it).

When the gradient reading finds the samples apart, the copy is run once more on the same batch in
reverse order (every argument whose axis 0 has the batch's size reversed with it): an output row
that then changes by more than 0.1% of the output's largest value depends on the sample's position
in the batch, not on its content (high). The usual cause is a positional encoding written for
time-first input (`pe[:x.size(0)]`, shaped `[max_len, 1, d]`) added to a batch-first input, so
every token of row b gets position b's encoding. This reading stands down when the model does not
give the same output twice in eval mode (randomness or state) or when an argument is a container
holding tensors (it could not be reordered with the batch).

The finding says where the samples meet (its location). The probe's copy logs, in call order, each
module's input and output that hold the batch on axis 0; after the backward pass from the probed
samples, a logged value whose other rows get a gradient lies before the mixing, one whose other
rows get none lies after it. The first step from one to the other is the site: inside a module
(an RNN or attention layer run along the batch axis: `rnn`, `encoder.layers.0.self_attn`) or in
the code of a forward between two modules (`Net: between fc1 and fc2`, a `.view` there).

## Why is this bad?
Predictions change with whatever else is in the batch; in training, every sample's label
pulls on other samples' outputs, and at inference with batch size 1 the model behaves
differently. The cause is nearly always a reshape or an axis convention.

## Example
```python
x = x.view(-1, batch_size)                 # should be x.view(batch_size, -1)
layer = nn.TransformerEncoderLayer(64, 4)  # batch_first=False: attends across the batch of (N, L, E) input
x = (x - x.mean(0)) / x.std(0)             # normalises with statistics of the batch, also in eval
```

## Recommended fix
Keep the batch axis first and untouched: `x.view(x.size(0), -1)` or `x.flatten(1)`; pass
`batch_first=True` to attention and recurrent layers fed (N, L, E); normalise with stored
statistics (a BatchNorm/LayerNorm layer) instead of the batch's own.

## Known problems
The outputs of the first and last samples are probed; mixing that reaches neither (a window
over neighbouring samples in the middle of the batch) is missed. Models that mix samples on purpose (set models,
minibatch discrimination) are flagged too. Graph networks over one whole graph (the batch axis
is the nodes; message passing mixes neighbours by design) are recognised by their loss masks:
the model reads N rows and every loss call fewer than N; the finding is then low with that
reason. The graph argument itself (an [N, N] adjacency or a [2, E] edge index) is not recorded
by the capture, so it is not what the rule reads.
""",
    ),
)
