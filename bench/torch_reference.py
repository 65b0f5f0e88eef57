#!/usr/bin/env python3
"""PyTorch reference for `nas bench`: builds the SAME architecture JSON in
PyTorch and measures the same things on the same data: training images/second
(Adam, fixed steps, batch 64) and batch-1 eval latency.

    python3 bench/torch_reference.py --arch bench/two_conv.json --threads 2
    python3 bench/torch_reference.py --zoo fashion_cnn   # via `nas zoo show --json`
"""
import argparse
import gc
import gzip
import json
import os
import statistics
import struct
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def same_padding(size, kernel, stride, dilation):
    """TensorFlow-style "same": (before, after), the extra pixel after."""
    span = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def window_padding(padding, h, w, kernel, stride, dilation):
    """Per-side padding (top, bottom, left, right) as the nas validator computes it."""
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    if padding == "same":
        return (*same_padding(h, kh, sh, dh), *same_padding(w, kw, sw, dw))
    if padding == "valid" or padding == 0:
        return (0, 0, 0, 0)
    ph, pw = pair(padding)
    return (ph, ph, pw, pw)


def out_size(size, kernel, stride, dilation, before, after):
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


ACTIVATIONS = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "swish": nn.SiLU,
}


class Padded(nn.Module):
    """Explicit (possibly asymmetric) zero padding, then a layer."""

    def __init__(self, pad, layer, value=0.0):
        super().__init__()
        self.pad, self.layer, self.value = pad, layer, value

    def forward(self, x):
        t, b, l, r = self.pad
        if any(self.pad):
            x = F.pad(x, (l, r, t, b), value=self.value)
        return self.layer(x)


class AvgPoolExcludingPad(nn.Module):
    def __init__(self, kernel, stride, pad):
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def forward(self, x):
        t, b, l, r = self.pad
        ones = torch.ones_like(x[:1, :1])
        xp = F.pad(x, (l, r, t, b))
        onesp = F.pad(ones, (l, r, t, b))
        s = F.avg_pool2d(xp, self.kernel, self.stride)
        c = F.avg_pool2d(onesp, self.kernel, self.stride)
        return s / c


class SE(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.squeeze, self.excite = nn.Linear(c, hidden), nn.Linear(hidden, c)

    def forward(self, x):
        g = torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean((2, 3))))))
        return x * g[:, :, None, None]


class Residual(nn.Module):
    def __init__(self, body, shortcut, act):
        super().__init__()
        self.body, self.shortcut, self.act = body, shortcut, act

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class Branches(nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


def build(layers, shape):
    """Returns (module, output shape); shape is (c, h, w) or (n,)."""
    mods = []
    for layer in layers:
        m, shape = build_layer(layer, shape)
        mods.append(m)
    return nn.Sequential(*mods), shape


def conv_block(c, h, w, filters, kernel, stride, padding, dilation, groups, bias, bn, act):
    pad = window_padding(padding, h, w, kernel, stride, dilation)
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    layers = [Padded(pad, nn.Conv2d(c, filters, (kh, kw), (sh, sw), 0, (dh, dw), groups, bias=bias))]
    if bn:
        layers.append(nn.BatchNorm2d(filters))
    layers.append(ACTIVATIONS[act]())
    oh = out_size(h, kh, sh, dh, pad[0], pad[1])
    ow = out_size(w, kw, sw, dw, pad[2], pad[3])
    return nn.Sequential(*layers), (filters, oh, ow)


def build_layer(l, shape):
    kind = l["kind"]
    if kind == "conv":
        c, h, w = shape
        return conv_block(c, h, w, l["filters"], l["kernel"], l.get("stride", 1), l.get("padding", "valid"),
                          l.get("dilation", 1), l.get("groups", 1), l.get("bias", True),
                          l.get("batch_norm", False), l.get("activation", "none"))
    if kind == "separable_conv":
        c, h, w = shape
        mid = c * l.get("depth_multiplier", 1)
        dw, (_, oh, ow) = conv_block(c, h, w, mid, l["kernel"], l.get("stride", 1), l.get("padding", "valid"),
                                     l.get("dilation", 1), c, False, False, "none")
        pw, out = conv_block(mid, oh, ow, l["filters"], 1, 1, "valid", 1, 1, l.get("bias", True),
                             l.get("batch_norm", False), l.get("activation", "none"))
        return nn.Sequential(dw, pw), out
    if kind == "pool":
        c, h, w = shape
        k, s = l["kernel"], l.get("stride", l["kernel"])
        pad = window_padding(l.get("padding", "valid"), h, w, k, s, 1)
        (kh, kw), (sh, sw) = pair(k), pair(s)
        if l["op"] == "max":
            m = Padded(pad, nn.MaxPool2d((kh, kw), (sh, sw)), value=float("-inf"))
        else:
            m = AvgPoolExcludingPad((kh, kw), (sh, sw), pad)
        return m, (c, out_size(h, kh, sh, 1, pad[0], pad[1]), out_size(w, kw, sw, 1, pad[2], pad[3]))
    if kind == "global_avg_pool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],)
    if kind == "flatten":
        n = 1
        for d in shape:
            n *= d
        return nn.Flatten(), (n,)
    if kind == "dense":
        return nn.Sequential(nn.Linear(shape[0], l["units"], bias=l.get("bias", True)),
                             ACTIVATIONS[l.get("activation", "none")]()), (l["units"],)
    if kind == "dropout":
        return nn.Dropout(l["rate"]), shape
    if kind == "activation":
        return ACTIVATIONS[l["function"]](), shape
    if kind == "lrn":
        return nn.LocalResponseNorm(l.get("size", 5), l.get("alpha", 1e-4), l.get("beta", 0.75), l.get("k", 2.0)), shape
    if kind == "se":
        c = shape[0]
        return SE(c, max(c // max(l.get("reduction", 16), 1), 1)), shape
    if kind == "residual":
        body, out = build(l["body"], shape)
        if l.get("shortcut", "identity") == "projection":
            c, h, w = shape
            oc, oh, ow = out
            sh = next(s for s in range(1, h + 1) if (h - 1) // s + 1 == oh)
            sw = next(s for s in range(1, w + 1) if (w - 1) // s + 1 == ow)
            shortcut = nn.Sequential(nn.Conv2d(c, oc, 1, (sh, sw), bias=False), nn.BatchNorm2d(oc))
        else:
            shortcut = nn.Identity()
        return Residual(body, shortcut, ACTIVATIONS[l.get("activation_after", "none")]()), out
    if kind == "branches":
        mods, channels, hw = [], 0, None
        for b in l["branches"]:
            m, (c, h, w) = build(b, shape) if b else (nn.Identity(), shape)
            mods.append(m)
            channels += c
            hw = hw or (h, w)
        return Branches(mods), (channels, *hw)
    raise SystemExit(f"unsupported layer kind {kind}")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = [struct.unpack(">I", data[4 + 4 * i: 8 + 4 * i])[0] for i in range(magic & 0xFF)]
    return torch.frombuffer(bytearray(data[4 + 4 * len(dims):]), dtype=torch.uint8).reshape(dims)


def status_mib(key):
    """A `/proc/self/status` memory line (Linux), MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_resident_peak():
    """Starts a new VmHWM peak, as `nas bench train` does before its steps."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch")
    p.add_argument("--zoo")
    p.add_argument("--nas", default="target/release/nas", help="the nas binary (for --zoo)")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--dataset", default="fashion-mnist", help="an IDX dataset folder name, or synthetic")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--latency-threads", type=int, default=1)
    args = p.parse_args()
    if args.arch:
        with open(args.arch) as f:
            arch = json.load(f)
    else:
        out = subprocess.run([args.nas, "zoo", "show", args.zoo, "--input", "28x28x1", "--classes", "10", "--json"],
                             check=True, capture_output=True, text=True).stdout
        arch = json.loads(out)
    c, h, w = arch["input"]
    torch.manual_seed(0)
    model, _ = build(arch["layers"], (c, h, w))
    # Only the images the steps use, as nas keeps them: bytes until a batch is made.
    needed = (args.steps + args.warmup) * args.batch_size
    if args.dataset == "synthetic":
        g = torch.Generator().manual_seed(7)
        pixels = torch.randint(0, 256, (needed, c, h, w), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, arch["classes"], (needed,), generator=g)
    else:
        pixels = read_idx(os.path.join(args.data_dir, args.dataset, "train-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(args.data_dir, args.dataset, "train-labels-idx1-ubyte.gz")).long()
        mean, std = pixels.float().mean() / 255.0, pixels.float().std() / 255.0
        pixels, labels = pixels[:needed].clone().reshape(-1, c, h, w), labels[:needed].clone()
    if args.dataset == "synthetic":
        mean, std = torch.tensor(0.5), torch.tensor(0.29)

    def batch_of(start, size):
        x = pixels[start:start + size].float() / 255.0
        return (x - mean) / std

    # Latency first (as nas does): batch 1, eval mode, no autograd.
    torch.set_num_threads(args.latency_threads)
    model.eval()
    x1 = batch_of(0, 1)
    times = []
    with torch.inference_mode():
        for i in range(220):
            t = time.perf_counter()
            model(x1)
            if i >= 20:
                times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    p50, p90 = times[len(times) // 2], times[int((len(times) - 1) * 0.9)]

    torch.set_num_threads(args.threads)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    b = args.batch_size
    timed = []
    gc.collect()
    rss_before = status_mib("VmRSS")
    peak_is_training_only = reset_resident_peak()
    for step in range(args.steps + args.warmup):
        start = (step * b) % (len(pixels) - b + 1)
        x, y = batch_of(start, b), labels[start:start + b]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if step >= args.warmup:
            timed.append(time.perf_counter() - t)
    print(json.dumps({
        "engine": f"PyTorch {torch.__version__}",
        "architecture": arch.get("name", ""),
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": b,
        "threads": args.threads,
        "steps": args.steps,
        # The batch over the median step time, as `nas bench train` reports it.
        "train_images_per_second": b / statistics.median(timed),
        "train_images_per_second_overall": args.steps * b / sum(timed),
        "latency_ms": {"p50": p50, "p90": p90},
        "latency_threads": args.latency_threads,
        "dataset": args.dataset,
        "rss_mib": {
            "before_training": rss_before,
            "peak_training": status_mib("VmHWM"),
            "peak_is_training_only": peak_is_training_only,
        },
    }))


if __name__ == "__main__":
    main()
