"""The zoo's networks against line-for-line PyTorch equivalents, training on the CPU.

    pip install -e .[bench]                       # PyTorch (CPU), for this script only
    python bench/peer_cpu.py                      # airbench (the `fast` preset's network), both precisions
    python bench/peer_cpu.py --nets airbench,ds_cnn,bilstm,seq2seq --reps 3
    python bench/peer_cpu.py --keras-variants fit,fit+keras-gelu,fit+xla,custom,task   # where the time goes
    python bench/peer_cpu.py --amx-off                # as on a CPU with AVX-512 BF16 but no AMX
    python bench/peer_cpu.py --ab zoo,keras-bn,torch --steps 40   # paired, in one process

Each measurement is a separate process (a fresh TensorFlow or PyTorch, nothing shared), the
stacks alternating within each repetition so that a slower or busier stretch of the machine
falls on both. A process builds the network, makes one resident random batch, runs
`--warmup` training steps, then times `--steps` steps; it reports examples per second.
The table gives the min and median over repetitions of each stack and the ratio of medians
(zoo / PyTorch, above 1 when the zoo is faster). Every measurement is appended to
`bench/results/peer_cpu.jsonl` with the machine's CPU model and flags, and the table is
appended to `bench/results/peer_cpu.md`.

`--ab` instead runs its variants in one process, one step of each in turn per round (the order
rotating), and reports each variant's slowest, median and fastest step and the ratio of medians
to the first variant: when the VM's speed drifts within seconds, as shared VMs' does, pairs of
steps taken moments apart compare better than processes taken minutes apart. `torch` runs
the PyTorch peer in the same process (its oneDNN and TensorFlow's are separate libraries).

The Keras side is the zoo's own training path: the registered builder with the task preset's
arguments, `zoo.optim.make_optimizer` and `zoo.losses`, compiled as `zoo.train` compiles it,
stepped by `model.fit` over the resident batch (`fit`, the task's path, `steps_per_execution`
1) or by `train_on_batch`. The PyTorch side is the same layers in the same order with the
same sizes, initial weights not copied (the speed does not depend on them), `torch.optim.SGD`/`Adam`/
`AdamW` and the same loss; bfloat16 is `torch.autocast("cpu", torch.bfloat16)` with
channels-last tensors for convolutions, as PyTorch's CPU performance guide recommends.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PRECISIONS = ("float32", "bfloat16")


def cpu_flags_summary():
    from zoo.precision import cpu_flags

    flags = cpu_flags()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


# --- networks ---------------------------------------------------------------------------------
# Each network: the batch size, the Keras side (model, optimizer, loss, a batch) and the PyTorch
# side (module, optimizer, loss function, a batch).

NETS = {}


def net(name, batch_size, unit="img"):
    def register(cls):
        NETS[name] = cls(batch_size, unit)
        return cls
    return register


class Net:
    def __init__(self, batch_size, unit):
        self.batch_size, self.unit = batch_size, unit


@net("airbench", batch_size=256)
class Airbench(Net):
    """The `fast` preset: airbench at widths 64/256/256, whitened (frozen) 2x2 stem, Nesterov SGD
    with decoupled weight decay under a one-cycle schedule, label smoothing 0.2."""

    def keras(self):
        import numpy as np

        from tasks.vision.cifar10 import PRESETS
        from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
        from zoo.optim import make_optimizer, make_schedule
        from zoo.registry import build_model

        p = PRESETS["fast"]
        model = build_model("airbench", num_classes=10, input_shape=(32, 32, 3), **p.get("model_kwargs", {}))
        model.get_layer("stem_conv").trainable = False  # whitened and frozen, as zoo.models.vision does
        schedule = make_schedule("onecycle", p["learning_rate"], steps_per_epoch=196, epochs=p["epochs"],
                                 pct_start=p["pct_start"])
        optimizer = make_optimizer("nesterov", schedule, momentum=p["momentum"], weight_decay=p["weight_decay"],
                                   offset_lr_scale=p.get("offset_lr_scale", 1.0))
        loss = SparseCategoricalCrossentropyWithSmoothing(p["label_smoothing"])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(self.batch_size, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 10, self.batch_size).astype("int32")
        return model, optimizer, loss, (x, y)

    def pipeline(self, one_thread=False, subset=10000):
        """The `fast` preset's training pipeline (zoo.pipeline.image_dataset: shuffle, random crop,
        flip, normalization, prefetch) over `subset` CIFAR-10 training images from ZOO_DATA_DIR."""
        import tensorflow as tf

        from tasks.vision.cifar10 import CIFAR10_MEAN, CIFAR10_STD, PRESETS
        from zoo.data.images import load_cifar10
        from zoo.pipeline import image_dataset

        if not os.environ.get("ZOO_DATA_DIR"):
            raise SystemExit("the pipe variant reads CIFAR-10: set ZOO_DATA_DIR")
        p, data = PRESETS["fast"], load_cifar10()
        ds = image_dataset(data.x_train[:subset], data.y_train[:subset], batch_size=self.batch_size, training=True,
                           mean=CIFAR10_MEAN, std=CIFAR10_STD, crop_padding=p["crop_padding"], flip=p["flip"],
                           seed=0, drop_remainder=True).repeat()
        if one_thread:
            options = tf.data.Options()
            options.threading.private_threadpool_size = 1
            options.threading.max_intra_op_parallelism = 1
            ds = ds.with_options(options)
        return ds

    def torch(self, bf16):
        import torch
        from torch import nn

        def group(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                    nn.BatchNorm2d(cout, momentum=0.4, eps=1e-5), nn.GELU(),
                    nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, momentum=0.4, eps=1e-5),
                    nn.GELU()]

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 24, 2, bias=False)
                self.stem.weight.requires_grad_(False)
                self.body = nn.Sequential(nn.GELU(), *group(24, 64), *group(64, 256), *group(256, 256))
                self.logits = nn.Linear(256, 10, bias=False)

            def forward(self, x):
                x = self.body(self.stem(x))
                x = torch.amax(x, dim=(2, 3))
                return self.logits(x.float()) / 9

        model = Model().to(memory_format=torch.channels_last)
        if not _task_config("vision.cifar10", "fast", torch=True).model_kwargs.get("bn_scale", True):
            for module in model.modules():  # the preset's batch norms learn offsets only
                if isinstance(module, nn.BatchNorm2d):
                    module.weight.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-3)
        loss = nn.CrossEntropyLoss(label_smoothing=0.2)
        x = torch.randn(self.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (self.batch_size,))
        return model, optimizer, loss, (x, y)


def _task_config(task, preset, torch=False):
    """The task's Config as its `preset` sets it. With `torch`, for a PyTorch process: TensorFlow is
    not loaded beside PyTorch, as Keras, which the task imports, comes up on the torch backend (unused)."""
    import importlib

    if torch:
        os.environ["KERAS_BACKEND"] = "torch"
    module = importlib.import_module(f"tasks.{task}")
    return module.Config(**module.PRESETS[preset])


def _zoo_optimizer(cfg, steps_per_epoch):
    """The optimizer and learning rate schedule `zoo.train` makes for `cfg`."""
    from zoo.train import make_training_optimizer

    return make_training_optimizer(cfg, steps_per_epoch=steps_per_epoch)


# PyTorch pieces the networks below share, each doing what the matching Keras layer does.


def _float32(layer, x):
    """`layer` in float32 also under autocast, as the zoo's float32 layers (front end, logits) are."""
    import torch

    with torch.autocast("cpu", enabled=False):
        return layer(x.float())


def _variational_dropout(x, rate, training):
    """Drops the same features at every time step of a `[batch, time, features]` sequence: Keras'
    SpatialDropout1D, and the input dropout of its LSTM (one mask per sequence)."""
    import torch.nn.functional as F

    return F.dropout1d(x.transpose(1, 2), rate, training).transpose(1, 2)


def _one_lstm_bias(lstm):
    """Keras' LSTM has one bias a gate, PyTorch's two (input and recurrent): the recurrent one is held
    at zero and frozen, so both sides train the same parameters."""
    for name, p in lstm.named_parameters():
        if name.startswith("bias_hh"):
            p.data.zero_()
            p.requires_grad_(False)
    return lstm


def _torch_optimizer(cls, model, clipnorm=None, **kwargs):
    """`cls` over the trainable parameters; with `clipnorm`, each gradient clipped to that norm on
    its own before the step, as Keras' `clipnorm` does (per variable, not global)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = cls(params, **kwargs)
    if clipnorm:
        def clip(*_):
            for p in params:
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_(p, clipnorm)
        optimizer.register_step_pre_hook(clip)
    return optimizer


def _same_padding(size, kernel, stride):
    """TensorFlow's "same" padding (before, after) of one axis: the odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@net("ds_cnn", batch_size=64, unit="clip")
class DSCNN(Net):
    """The speech.commands `small` preset: DS-CNN at 128 channels, four blocks, on 1 s clips at 16 kHz
    with the log-mel front end (40 ms window, 20 ms hop) inside the model; AdamW under a cosine
    schedule, label smoothing 0.1.

    Both sides: waveforms [64, 16000] -> log-mel [64, 51, 40] -> conv1 [64, 26, 20, 128] -> logits
    [64, 12]; 79,116 trainable parameters (and 2,304 batch-norm statistics on both).
    """

    def keras(self):
        import numpy as np

        from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
        from zoo.registry import build_model

        cfg = _task_config("speech.commands", "small")
        model = build_model(cfg.model, num_classes=12, sample_rate=16000, num_samples=16000, **cfg.model_kwargs)
        optimizer = _zoo_optimizer(cfg, steps_per_epoch=1000)
        loss = SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing)
        rng = np.random.default_rng(0)
        x = rng.uniform(-0.5, 0.5, size=(self.batch_size, 16000)).astype("float32")
        y = rng.integers(0, 12, self.batch_size).astype("int32")
        return model, optimizer, loss, (x, y)

    def torch(self, bf16):
        import torch
        from torch import nn

        cfg = _task_config("speech.commands", "small", torch=True)
        from zoo.models.speech import frontend_settings, mel_filterbank

        kwargs = cfg.model_kwargs
        filters, blocks = kwargs["filters"], kwargs["blocks"]
        fft_length, frame_length, frame_step = frontend_settings(16000, kwargs["window_ms"], kwargs["hop_ms"])
        frames, bins = 1 + 16000 // frame_step, 40
        # The builder's defaults where the preset sets none: 40 mel bins from 20 Hz, 2 + 2 masks of 5 bins.
        time_masks, time_width, freq_masks, freq_width = 2, kwargs["time_mask_width"], 2, 5

        def bn_relu(channels):  # Keras' BatchNormalization defaults: momentum 0.99, epsilon 1e-3
            return [nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01), nn.ReLU()]

        def bands(batch, count, width, size):  # SpecAugment._bands
            width = min(width, size)
            w = torch.floor(torch.rand(batch, count) * (width + 1))
            start = torch.floor(torch.rand(batch, count) * (size - w + 1))
            pos = torch.arange(size, dtype=torch.float32)[None, None, :]
            return ((pos >= start[..., None]) & (pos < (start + w)[..., None])).any(dim=1)

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("window", torch.hann_window(frame_length, periodic=True))
                self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(
                    sample_rate=16000, fft_length=fft_length, num_mel_bins=bins, fmin=20.0)))
                (t0, t1), (f0, f1) = _same_padding(frames, 10, 2), _same_padding(bins, 4, 2)
                layers = [nn.ZeroPad2d((f0, f1, t0, t1)), nn.Conv2d(1, filters, (10, 4), stride=2, bias=False),
                          *bn_relu(filters)]
                for _ in range(blocks):
                    layers += [nn.Conv2d(filters, filters, 3, padding=1, groups=filters, bias=False),
                               *bn_relu(filters), nn.Conv2d(filters, filters, 1, bias=False), *bn_relu(filters)]
                self.body = nn.Sequential(*layers)
                self.dropout = nn.Dropout(0.2)
                self.logits = nn.Linear(filters, 12)

            def frontend(self, x):  # LogMelSpectrogram, UtteranceNormalization, SpecAugment: float32
                pad = fft_length // 2
                x = nn.functional.pad(x, (pad, pad))
                # The Hann window of frame_length, centred in each fft_length frame, as keras.ops.stft does.
                spec = torch.stft(x, fft_length, hop_length=frame_step, win_length=frame_length, window=self.window,
                                  center=False, return_complex=True)
                power = spec.real.square() + spec.imag.square()  # [batch, fft bins, frames]
                mel = torch.matmul(power.transpose(1, 2), self.filterbank)
                db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
                db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)
                mean = db.mean(dim=(1, 2), keepdim=True)
                var = (db - mean).square().mean(dim=(1, 2), keepdim=True)
                x = (db - mean) / torch.sqrt(var + 1e-6)
                if self.training:
                    batch = x.shape[0]
                    masked = bands(batch, time_masks, time_width, frames)[:, :, None] | \
                        bands(batch, freq_masks, freq_width, bins)[:, None, :]
                    x = torch.where(masked, torch.zeros_like(x), x)
                return x

            def forward(self, waveforms):
                with torch.autocast("cpu", enabled=False):
                    x = self.frontend(waveforms)
                x = x[:, None].contiguous(memory_format=torch.channels_last)  # [batch, 1, frames, bins]
                x = self.body(x).mean(dim=(2, 3))
                return _float32(self.logits, self.dropout(x))

        model = Model().to(memory_format=torch.channels_last)
        optimizer = _torch_optimizer(torch.optim.AdamW, model, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        x = torch.rand(self.batch_size, 16000) - 0.5
        y = torch.randint(0, 12, (self.batch_size,))
        return model, optimizer, loss, (x, y)


@net("bilstm", batch_size=64, unit="review")
class BiLSTM(Net):
    """The text.sentiment `default` preset: word and bigram embeddings (30,000 and 50,000 rows of 128)
    summed, spatial dropout, two 64-unit BiLSTMs with input dropout, max pooling over 800 tokens,
    dropout, 2 classes; AdamW under a cosine schedule, each gradient clipped to norm 1.

    No padding in the batch (every review 800 tokens), so Keras' masks are all true and PyTorch
    needs no packed sequences. Both sides: [64, 800, 2] ids -> [64, 2] logits; 10,437,890 trainable
    parameters (10,240,000 of them embeddings).
    """

    def keras(self):
        import numpy as np

        from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
        from zoo.registry import build_model

        cfg = _task_config("text.sentiment", "default")
        model = build_model(cfg.model, vocab_size=cfg.vocab_size, bigram_vocab_size=cfg.bigrams, num_classes=2,
                            **cfg.model_kwargs)
        optimizer = _zoo_optimizer(cfg, steps_per_epoch=352)
        loss = SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing)
        rng = np.random.default_rng(0)
        words = rng.integers(1, cfg.vocab_size, (self.batch_size, cfg.max_length))
        bigrams = rng.integers(1, cfg.bigrams, (self.batch_size, cfg.max_length))
        x = np.stack([words, bigrams], axis=-1).astype("int32")
        y = rng.integers(0, 2, self.batch_size).astype("int32")
        return model, optimizer, loss, (x, y)

    def torch(self, bf16):
        import torch
        from torch import nn

        cfg = _task_config("text.sentiment", "default", torch=True)
        kwargs = cfg.model_kwargs
        dim, units, dropout = kwargs["embedding_dim"], kwargs["units"], kwargs["dropout"]

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(cfg.vocab_size, dim)
                self.bigram_embedding = nn.Embedding(cfg.bigrams, dim)
                sizes = [dim] + [2 * n for n in units]
                self.lstms = nn.ModuleList(_one_lstm_bias(nn.LSTM(i, n, batch_first=True, bidirectional=True))
                                           for i, n in zip(sizes, units))
                self.logits = nn.Linear(sizes[-1], 2)

            def forward(self, tokens):
                x = self.embedding(tokens[..., 0]) + self.bigram_embedding(tokens[..., 1])
                x = _variational_dropout(x, kwargs["embedding_dropout"], self.training)
                for lstm in self.lstms:
                    x, _ = lstm(_variational_dropout(x, dropout, self.training))
                x = nn.functional.dropout(x.amax(dim=1), dropout, self.training)
                return _float32(self.logits, x)

        model = Model()
        optimizer = _torch_optimizer(torch.optim.AdamW, model, clipnorm=cfg.clipnorm, lr=cfg.learning_rate,
                                     weight_decay=cfg.weight_decay)
        loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        tokens = torch.stack([torch.randint(1, cfg.vocab_size, (self.batch_size, cfg.max_length)),
                              torch.randint(1, cfg.bigrams, (self.batch_size, cfg.max_length))], dim=-1)
        y = torch.randint(0, 2, (self.batch_size,))
        return model, optimizer, loss, (tokens, y)


# A batch of the translation pipeline's length bucket of 17-20 ids (Multi30k's commonest): sources
# of 20 ids, targets of 20 ids ([START] ... [END]) read as 19 decoder inputs and 19 labels.
SOURCE_LENGTH, TARGET_LENGTH = 20, 19


@net("seq2seq", batch_size=64, unit="sentence pair")
class Seq2Seq(Net):
    """The text.translation `default` preset: bahdanau_lstm with 8,000-id vocabularies, 256-wide
    embeddings, BiLSTM encoder and LSTM decoder, additive attention, dropout 0.3; Adam under a cosine
    schedule, each gradient clipped to norm 1, label smoothing 0.1 over non-padding labels.

    No padding in the batch (the source mask is computed and applied, all true), so PyTorch needs no
    packed sequences. Both sides: ([64, 20], [64, 19]) ids -> [64, 19, 8000] logits; 8,384,320
    trainable parameters.
    """

    def keras(self):
        import numpy as np

        from zoo.losses import SparseCategoricalCrossentropyWithSmoothing
        from zoo.registry import build_model
        from zoo.subword import PAD_ID

        cfg = _task_config("text.translation", "default")
        model = build_model(cfg.model, source_vocab_size=cfg.source_vocab_size,
                            target_vocab_size=cfg.target_vocab_size, **cfg.model_kwargs)
        optimizer = _zoo_optimizer(cfg, steps_per_epoch=453)
        loss = SparseCategoricalCrossentropyWithSmoothing(cfg.label_smoothing, ignore_class=PAD_ID)
        rng = np.random.default_rng(0)
        source = rng.integers(1, cfg.source_vocab_size, (self.batch_size, SOURCE_LENGTH)).astype("int32")
        target = rng.integers(1, cfg.target_vocab_size, (self.batch_size, TARGET_LENGTH + 1)).astype("int32")
        return model, optimizer, loss, ((source, target[:, :-1]), target[:, 1:])

    def torch(self, bf16):
        import torch
        from torch import nn

        cfg = _task_config("text.translation", "default", torch=True)
        from zoo.subword import PAD_ID

        kwargs = cfg.model_kwargs
        source_vocab, target_vocab = cfg.source_vocab_size, cfg.target_vocab_size
        dim, enc, units, rate = kwargs["embedding_dim"], kwargs["encoder_units"], kwargs["units"], kwargs["dropout"]

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.source_embedding = nn.Embedding(source_vocab, dim)
                self.encoder = _one_lstm_bias(nn.LSTM(dim, enc, batch_first=True, bidirectional=True))
                self.attention_keys = nn.Linear(2 * enc, units, bias=False)
                self.init_h = nn.Linear(2 * enc, units)
                self.init_c = nn.Linear(2 * enc, units)
                self.target_embedding = nn.Embedding(target_vocab, dim)
                self.decoder = _one_lstm_bias(nn.LSTM(dim, units, batch_first=True))
                self.attention_query = nn.Linear(units, units, bias=False)
                # keras.layers.AdditiveAttention(use_scale=True): a learned scale a key feature.
                self.scale = nn.Parameter(torch.empty(units).uniform_(-(3 / units) ** 0.5, (3 / units) ** 0.5))
                self.attentional_state = nn.Linear(2 * enc + units, units)
                self.logits = nn.Linear(units, target_vocab)
                self.dropout = nn.Dropout(rate)

            def forward(self, inputs):
                source, target = inputs
                source_mask = source != PAD_ID
                memory, (h, c) = self.encoder(self.dropout(self.source_embedding(source)))
                memory = self.dropout(memory)
                keys = self.attention_keys(memory)
                h0 = torch.tanh(self.init_h(torch.cat([h[0], h[1]], dim=-1)))
                c0 = torch.tanh(self.init_c(torch.cat([c[0], c[1]], dim=-1)))
                x = self.dropout(self.target_embedding(target))
                query, _ = self.decoder(x, (h0[None].to(x.dtype), c0[None].to(x.dtype)))
                q = self.attention_query(query)
                # AdditiveAttention: sum(scale * tanh(q + k)) over features, padding at -1e9, softmax.
                scores = (self.scale.to(q.dtype) * torch.tanh(q[:, :, None, :] + keys[:, None, :, :])).sum(dim=-1)
                scores = torch.where(~source_mask[:, None, :], scores - 1.0e9, scores)
                context = torch.matmul(torch.softmax(scores, dim=-1), memory)
                x = torch.tanh(self.attentional_state(torch.cat([context, query], dim=-1)))
                return _float32(self.logits, self.dropout(x))

        model = Model()
        optimizer = _torch_optimizer(torch.optim.Adam, model, clipnorm=cfg.clipnorm, lr=cfg.learning_rate)
        cross_entropy = nn.CrossEntropyLoss(ignore_index=PAD_ID, label_smoothing=cfg.label_smoothing)

        def loss(logits, labels):
            return cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

        source = torch.randint(1, source_vocab, (self.batch_size, SOURCE_LENGTH))
        target = torch.randint(1, target_vocab, (self.batch_size, TARGET_LENGTH + 1))
        return model, optimizer, loss, ((source, target[:, :-1]), target[:, 1:])


# --- one measurement (a child process) --------------------------------------------------------

KNOBS = {
    "xla": "jit_compile=True",
    "inter1": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "intra1": "tf.config.threading.set_intra_op_parallelism_threads(1)",
    "no-onednn": "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)",
    "keras-gelu": "GELU layers call keras.activations.gelu (tf.nn.gelu, erfc) instead of the zoo's GELU",
    "tanh-gelu": "GELU layers use the tanh approximation",
    "no-metrics": "compiled without the accuracy metric",
    "data1": "pipe: the tf.data pipeline held to one thread (private_threadpool_size=1, max_intra_op_parallelism=1)",
    "lean-bn": "training-mode BatchNormalization normalizes in the compute dtype (statistics in float32) "
               "instead of Keras' float32 round trip: a diagnostic, not the zoo's layer",
    "keras-lstm": "LSTM layers run Keras' own loop (the input projection inside it) instead of the zoo's "
                  "(zoo.models.layers.LSTM)",
    "autodiff-lstm": "the zoo's LSTM layers train by automatic differentiation of their time loop instead of "
                     "the gradient zoo.models.layers writes out (the activations' derivatives before the "
                     "backward loop, the recurrent kernel's gradient after it)",
    "keras-bn": "BatchNormalization layers call Keras' own code instead of the zoo's fused kernel "
                "(zoo.models.layers.BatchNormalization)",
    "lookahead": "Lookahead (zoo.callbacks.Lookahead, a sync every 5 steps) in fit and --ab, as --lookahead 5 "
                 "runs it (train_on_batch and custom run without)",
    "graph-gelu": "GELU layers train through the erf formula in TensorFlow's graph (a kernel per elementwise op) "
                  "instead of the zoo's XLA-compiled forward and backward (zoo.models.layers.GELU)",
}


def lean_batch_norm(layer):
    """Replaces a BatchNormalization layer's training-mode call by one that keeps bfloat16 inputs
    in bfloat16 (`x * a + b`, a and b from float32 statistics): how much Keras' float32 round trip
    costs."""
    from keras import ops

    keras_call = layer.call

    def call(inputs, training=None, mask=None):
        if not training or inputs.dtype == "float32":
            return keras_call(inputs, training=training, mask=mask)
        mean, variance = ops.moments(ops.cast(inputs, "float32"), axes=layer._reduction_axes)
        layer.moving_mean.assign(layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
        layer.moving_variance.assign(layer.moving_variance * layer.momentum + variance * (1.0 - layer.momentum))
        scale = ops.rsqrt(variance + layer.epsilon) * ops.cast(layer.gamma, "float32")
        shift = ops.cast(layer.beta, "float32") - mean * scale
        return inputs * ops.cast(scale, inputs.dtype) + ops.cast(shift, inputs.dtype)

    layer.call = call


def keras_model(spec, knobs):
    """`spec`'s zoo network, compiled, with the model-level `knobs` applied: (model, optimizer,
    loss, resident batch)."""
    import keras

    model, optimizer, loss, (x, y) = spec.keras()
    if "keras-gelu" in knobs or "tanh-gelu" in knobs or "graph-gelu" in knobs:
        from zoo.models.layers import GELU, gelu

        approximate = "tanh-gelu" in knobs
        for layer in model.layers:
            if isinstance(layer, GELU):
                layer.call = ((lambda t, training=None: gelu(t)) if "graph-gelu" in knobs else
                              (lambda t, training=None: keras.activations.gelu(t, approximate=approximate)))
    if "keras-bn" in knobs:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.call = functools.partial(keras.layers.BatchNormalization.call, layer)
    if "keras-lstm" in knobs:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.LSTM):
                layer.inner_loop = functools.partial(keras.layers.LSTM.inner_loop, layer)
    if "autodiff-lstm" in knobs:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.LSTM):
                layer._written_gradient = False
    if "lean-bn" in knobs:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                lean_batch_norm(layer)
    model.compile(optimizer=optimizer, loss=loss, metrics=[] if "no-metrics" in knobs else ["accuracy"],
                  jit_compile="xla" in knobs)
    return model, optimizer, loss, (x, y)


def run_keras(spec, precision, steps, warmup, variant, knobs):
    """A Keras training measurement: `variant` is fit, train_on_batch or custom (a tf.function of
    GradientTape + optimizer.apply, no Keras train_step), `knobs` from KNOBS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "no-onednn" in knobs:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    import zoo  # noqa: F401  (before TensorFlow: zoo.cpu picks its kernels, as the zoo's commands do)
    import keras
    import tensorflow as tf

    if "inter1" in knobs:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if "intra1" in knobs:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    if "lookahead" in knobs and variant in ("train_on_batch", "custom"):
        raise SystemExit("the lookahead knob runs in fit, pipe and --ab (a callback); not in train_on_batch or custom")
    model, optimizer, loss, (x, y) = keras_model(spec, knobs)
    if variant in ("train_on_batch", "custom"):
        if variant == "custom":
            @tf.function(jit_compile="xla" in knobs)
            def step(x, y):
                with tf.GradientTape() as tape:
                    value = loss(y, model(x, training=True))
                grads = tape.gradient(value, model.trainable_variables)
                optimizer.apply(grads, model.trainable_variables)
                return value
        else:
            step = model.train_on_batch
        for _ in range(warmup):
            step(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            out = step(x, y)
        float(out if variant == "custom" else 0.0)  # wait for the last step
        seconds = time.perf_counter() - start
    else:  # fit: Keras' own loop, one step a call, over the resident batch (pipe: the task's pipeline)
        data = tf.data.Dataset.from_tensors((x, y)).repeat() if variant == "fit" else spec.pipeline("data1" in knobs)

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    self.start = time.perf_counter()

            def on_train_end(self, logs=None):
                self.seconds = time.perf_counter() - self.start

        clock = Clock()
        lookahead = []
        if "lookahead" in knobs:
            from zoo.callbacks import Lookahead

            lookahead = [Lookahead(every=5)]
        model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[*lookahead, clock])
        seconds = clock.seconds
    return {"versions": f"Keras {keras.__version__}, TensorFlow {tf.__version__}", "seconds": seconds}


MODEL_KNOBS = ("keras-gelu", "tanh-gelu", "graph-gelu", "keras-bn", "keras-lstm", "lean-bn", "no-metrics",
               "xla", "lookahead", "autodiff-lstm")


def with_lookahead(model, step, every=5):
    """`step` followed by zoo.callbacks.Lookahead's end-of-batch hook (a sync every `every` steps)."""
    from zoo.callbacks import Lookahead

    lookahead = Lookahead(every=every)
    lookahead.set_model(model)
    lookahead.set_params({"steps": 196, "epochs": 17})
    lookahead.on_train_begin()
    lookahead.on_epoch_begin(0)
    count = itertools.count()

    def run():
        out = step()
        i = next(count)
        if i and i % 196 == 0:
            lookahead.on_epoch_end(i // 196 - 1)
            lookahead.on_epoch_begin(i // 196)
        lookahead.on_train_batch_end(i % 196)
        return out

    return run


def run_ab(spec, precision, steps, warmup, variants):
    """Several variants of the network in one process, stepped in turn (one step each per round,
    the order rotating every round): a change in the machine's speed hits every variant alike.
    Each variant is `zoo` or `+`-joined MODEL_KNOBS (Keras' `train_on_batch` on the resident
    batch), or `torch` (the PyTorch peer's step); returns each one's per-step seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import zoo  # noqa: F401  (before TensorFlow: zoo.cpu picks its kernels, as the zoo's commands do)
    import keras
    import tensorflow as tf

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    versions = f"Keras {keras.__version__}, TensorFlow {tf.__version__}"
    step_of = {}
    for variant in variants:
        if variant == "torch":
            import torch

            step = torch_step(spec, precision)
            versions += f"; PyTorch {torch.__version__}"
        else:
            model, _, _, (x, y) = keras_model(spec, [] if variant == "zoo" else variant.split("+"))
            step = functools.partial(model.train_on_batch, x, y)  # returns numbers: the step has finished
            if "lookahead" in variant.split("+"):
                step = with_lookahead(model, step)
        for _ in range(warmup):
            step()
        step_of[variant] = step
    return {"versions": versions, "seconds": step_in_turn(step_of, steps)}


def step_in_turn(step_of, rounds):
    """Runs every `step_of[variant]()` once a round, the order rotating every round, `rounds`
    times: each variant's list of step seconds. A change in the machine's speed hits all alike."""
    variants = list(step_of)
    seconds = {variant: [] for variant in variants}
    for r in range(rounds):
        for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
            start = time.perf_counter()
            step_of[variant]()
            seconds[variant].append(time.perf_counter() - start)
    return seconds


def run_task(spec, precision, knobs, subset=10000):
    """The task's own epoch, pipeline included: `python -m tasks.vision.cifar10 --preset fast
    --epochs 2 --subset N` on the data in ZOO_DATA_DIR; the rate is N over the second epoch's
    `epoch_time_s` (history.csv). Only for airbench."""
    import csv
    import tempfile

    if spec is not NETS["airbench"]:
        raise SystemExit("the task variant measures the `fast` preset's epoch: --nets airbench")
    if not os.environ.get("ZOO_DATA_DIR"):
        raise SystemExit("the task variant reads CIFAR-10: set ZOO_DATA_DIR")
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "tasks.vision.cifar10", "--preset", "fast", "--epochs", "2", "--subset",
               str(subset), "--output-dir", out, "--verbose", "0", "--no-tensorboard", "--no-tta", "--no-export",
               "--precision", "mixed_bfloat16" if precision == "bfloat16" else "float32"]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(Path(out) / "history.csv") as f:
            seconds = float(list(csv.DictReader(f))[1]["epoch_time_s"])
    import keras
    import tensorflow as tf

    return {"versions": f"Keras {keras.__version__}, TensorFlow {tf.__version__}", "seconds": seconds,
            "examples": subset}


def torch_step(spec, precision):
    """One PyTorch training step of `spec`'s network on its resident batch (autocast bfloat16)."""
    import torch

    bf16 = precision == "bfloat16"
    model, optimizer, loss_fn, (x, y) = spec.torch(bf16)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        optimizer.step()

    return step


def run_torch(spec, precision, steps, warmup):
    import torch

    step = torch_step(spec, precision)
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return {"versions": f"PyTorch {torch.__version__}", "seconds": time.perf_counter() - start}


def child(args):
    sys.path.insert(0, str(ROOT))
    spec = NETS[args.net]
    if args.stack.startswith("ab:"):
        result = run_ab(spec, args.precision, args.steps, args.warmup, args.stack[3:].split(","))
        print("RESULT " + json.dumps(result), flush=True)
        return
    variant, *knobs = args.stack.split("+")
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise SystemExit(f"unknown knobs {unknown}; known: {', '.join(KNOBS)}")
    if variant == "torch":
        result = run_torch(spec, args.precision, args.steps, args.warmup)
    elif variant == "task":
        result = run_task(spec, args.precision, knobs)
    else:
        result = run_keras(spec, args.precision, args.steps, args.warmup, variant, knobs)
    examples = result.pop("examples", args.steps * spec.batch_size)
    result.update(stack=args.stack, net=args.net, precision=args.precision, batch_size=spec.batch_size,
                  steps=args.steps, rate=examples / result["seconds"], unit=spec.unit)
    print("RESULT " + json.dumps(result), flush=True)


# --- the comparison (the parent process) ------------------------------------------------------

def measure(net_name, stack, precision, args):
    cmd = [sys.executable, __file__, "--child", "--net", net_name, "--stack", stack, "--precision", precision,
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def ab(args, machine):
    """`--ab`: the variants of each network, in one process each, stepped in turn."""
    variants = args.ab.split(",")
    for variant in variants:
        unknown = sorted(set(variant.split("+")) - set(MODEL_KNOBS) - {"zoo", "torch"})
        if unknown:
            raise SystemExit(f"--ab takes zoo, torch or +-joined knobs of {', '.join(MODEL_KNOBS)}; not {unknown}")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines, versions = [], set()
    for net_name in args.nets.split(","):
        spec = NETS[net_name]
        for precision in args.precisions.split(","):
            result = measure(net_name, "ab:" + ",".join(variants), precision, args)
            seconds = result["seconds"]
            versions.add(result["versions"])
            base = statistics.median(seconds[variants[0]])
            for variant in variants:
                median = statistics.median(seconds[variant])
                rate = spec.batch_size / median
                lines.append(f"| {net_name} | {precision} | {variant} | {spec.batch_size / max(seconds[variant]):.0f} / "
                             f"{rate:.0f} / {spec.batch_size / min(seconds[variant]):.0f} | {base / median:.2f}x | "
                             f"{spec.unit}/s |")
                print(lines[-1], flush=True)
                if not args.no_save:
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    with open(RESULTS / "peer_cpu.jsonl", "a") as f:
                        f.write(json.dumps(dict(stack="ab:" + variant, net=net_name, precision=precision,
                                                batch_size=spec.batch_size, steps=args.steps, rate=rate,
                                                unit=spec.unit, machine=machine, time=stamp, tag=args.tag,
                                                step_seconds=seconds[variant])) + "\n")
    text = (f"{machine['cpu']} ({', '.join(machine['flags'])}), {stamp}; {'; '.join(sorted(versions))}; "
            f"{args.steps} rounds of one step each, "
            f"after {args.warmup} warm-up\n\n| network | precision | variant | slowest / median / fastest step | "
            f"vs {variants[0]} (medians) | unit |\n|---|---|---|---:|---:|---|\n" + "\n".join(lines) + "\n")
    print("\n" + text)
    if not args.no_save:
        with open(RESULTS / "peer_cpu.md", "a") as f:
            f.write(f"## `python bench/peer_cpu.py {shlex.join(sys.argv[1:])}`\n\n{text}\n")


def table(rows, keras_stacks):
    lines = []
    for (net_name, precision), runs in rows.items():
        torch_rates = [r["rate"] for r in runs if r["stack"] == "torch"]
        for stack in keras_stacks:
            rates = [r["rate"] for r in runs if r["stack"] == stack]
            if not rates or not torch_rates:
                continue
            unit = runs[0]["unit"]
            lines.append(f"| {net_name} | {precision} | {stack} | {min(rates):.0f} / {statistics.median(rates):.0f} | "
                         f"{min(torch_rates):.0f} / {statistics.median(torch_rates):.0f} | "
                         f"{statistics.median(rates) / statistics.median(torch_rates):.2f}x | {unit}/s |")
    head = ("| network | precision | zoo stack | zoo min / median | PyTorch min / median | ratio (medians) | unit |\n"
            "|---|---|---|---:|---:|---:|---|")
    return head + "\n" + "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--nets", default="airbench", help=f"comma-separated, of: {', '.join(NETS)}")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--keras-variants", default="fit",
                        help="comma-separated zoo stacks: fit (Keras' loop, the task's path), pipe (fit over the "
                             "task's tf.data pipeline on real images; airbench, ZOO_DATA_DIR), train_on_batch, "
                             "custom (tf.function of GradientTape + optimizer.apply) or task (the task's real "
                             "epoch, pipeline included; airbench, ZOO_DATA_DIR), each optionally with +KNOB "
                             "(several allowed): " + "; ".join(f"{k}: {v}" for k, v in KNOBS.items()))
    parser.add_argument("--ab", metavar="VARIANTS",
                        help="instead of separate processes: variants in one process, one "
                             "step each in turn, e.g. zoo,keras-bn,graph-gelu,torch (each zoo or +-joined knobs of: "
                             f"{', '.join(MODEL_KNOBS)}: Keras' train_on_batch; or torch: the PyTorch peer's "
                             "step); --steps rounds")
    parser.add_argument("--amx-off", action="store_true",
                        help="both stacks' oneDNN without AMX (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16), as on a CPU "
                             "with AVX-512 BF16 but no AMX")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tag", default="", help="a label stored with each measurement")
    parser.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--net", help=argparse.SUPPRESS)
    parser.add_argument("--stack", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT))
    from zoo.export_lite import cpu_model

    nets = args.nets.split(",")
    unknown = sorted(set(nets) - set(NETS))
    if unknown:
        parser.error(f"unknown --nets {', '.join(unknown)}; known: {', '.join(NETS)}")
    keras_stacks = args.keras_variants.split(",")
    machine = {"cpu": cpu_model(), "flags": cpu_flags_summary(), "cpus": os.cpu_count()}
    if args.amx_off:
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE_BF16"  # inherited by every measurement
        machine["flags"] = [f for f in machine["flags"] if not f.startswith("amx")] + ["(AMX off in oneDNN)"]
    if args.ab:
        return ab(args, machine)
    print(f"{machine['cpu']} ({', '.join(machine['flags'])}); {args.reps} repetitions, "
          f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
    rows = {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for rep in range(args.reps):
        for net_name in nets:
            for precision in args.precisions.split(","):
                # Alternate which stack goes first from one repetition to the next.
                stacks = ["torch", *keras_stacks]
                for stack in (stacks if rep % 2 else stacks[::-1]):
                    try:
                        r = measure(net_name, stack, precision, args)
                    except RuntimeError as e:  # one broken configuration does not lose the others
                        print(f"  rep {rep} {net_name} {precision} {stack}: failed\n{e}", flush=True)
                        continue
                    r.update(machine=machine, rep=rep, time=stamp, tag=args.tag)
                    rows.setdefault((net_name, precision), []).append(r)
                    print(f"  rep {rep} {net_name:9s} {precision:9s} {stack:22s} {r['rate']:8.1f} {r['unit']}/s",
                          flush=True)
                    if not args.no_save:
                        RESULTS.mkdir(parents=True, exist_ok=True)
                        with open(RESULTS / "peer_cpu.jsonl", "a") as f:
                            f.write(json.dumps(r) + "\n")
    versions = sorted({r["versions"] for runs in rows.values() for r in runs})
    text = (f"{machine['cpu']} ({', '.join(machine['flags'])}), {stamp}; "
            f"{'; '.join(versions)}; {args.reps} repetitions of {args.warmup} warm-up + {args.steps} timed steps\n\n"
            + table(rows, keras_stacks) + "\n")
    print("\n" + text)
    if not args.no_save:
        with open(RESULTS / "peer_cpu.md", "a") as f:
            f.write(f"## `python bench/peer_cpu.py {shlex.join(argv or sys.argv[1:])}`\n\n{text}\n")
    return rows


if __name__ == "__main__":
    main()
