"""GPEN-BFR-512: blind face restoration with a StyleGAN2 decoder fed by a conv encoder.

Provenance
    Paper: Tao Yang, Peiran Ren, Xuansong Xie, Lei Zhang, "GAN Prior Embedded
    Network for Blind Face Restoration in the Wild", CVPR 2021 (arXiv:2105.06070).
    Official repository: github.com/yangxy/GPEN, ``face_model/gpen_model.py``
    class ``FullGenerator`` (StyleGAN2 layers in the layout of
    rosinality/stylegan2-pytorch, ops in ``face_model/op/``); video-retalking
    vendors the same file as ``third_part/GPEN/face_model/gpen_model.py``. This
    file is an independent re-implementation from the architecture description;
    submodule names reproduce the official checkpoint keys.
    Checkpoint: ``GPEN-BFR-512.pth``, a plain state_dict (strict load) that
    includes the 21 fixed 4x4 blur kernels as ``*.kernel`` buffers; see `remap`.
    Published by the GPEN authors (links in the yangxy/GPEN README) and in
    release v0.0.1 of vinthony/video-retalking.
    Weights licence: yangxy/GPEN has no licence file. Its README said
    "(c) Alibaba, 2021. For academic and non-commercial use only." from 2021
    until that section was removed in March 2026, and calls the released model
    "not our best model due to commercial issues"; no other terms for the
    weights are published (not verified further). The weights are not
    distributed with this package.

Contract (``forward(image)``)
    image: (B, 3, 512, 512) float, **RGB in [-1, 1]**: a face warped to the
           512x512 FFHQ-style template (video-retalking: the BGR uint8 crop ->
           RGB, /255, (x - 0.5) / 0.5).
    returns (B, 3, 512, 512), RGB, **no output activation** (mostly in
           [-1, 1]; upstream maps it back with x * 0.5 + 0.5, clips to [0, 1],
           x255, RGB -> BGR).
    Deterministic: the StyleGAN2 "noise" inputs are the encoder's own feature
    maps, concatenated to the decoder features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict
from ._stylegan import ConstantInput, PixelNorm, channel_table, modulate, per_sample_conv

__all__ = ["NUM_PARAMS", "FullGenerator", "make_kernel", "remap", "upfirdn2d"]

NUM_PARAMS = 71_005_223
"""Trainable parameters; the state_dict also holds the 21 blur kernels (336 values)."""

BLUR_TAPS = (1, 3, 3, 1)
_SQRT2 = math.sqrt(2)


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """The separable 2-D kernel outer(taps, taps), normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """StyleGAN2's upsample-filter-downsample on every channel of `x` (B, C, H, W).

    Inserts ``up - 1`` zeros after every sample, pads ``pad[0]`` before and
    ``pad[1]`` after (both axes), convolves with `kernel` (a true convolution,
    so the kernel is flipped for `F.conv2d`) and keeps every `down`-th sample.
    """
    b, c, h, w = x.shape
    if up > 1:
        stuffed = x.new_zeros(b, c, h * up, w * up)
        stuffed[:, :, ::up, ::up] = x
        x = stuffed
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip(0, 1).to(x).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, stride=down, groups=c)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Bias, leaky ReLU(0.2), then x sqrt(2) so that the activations keep unit variance."""
    out = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu_(out, 0.2).mul_(_SQRT2)  # in place on the fresh sum: these maps are the largest


class FusedLeakyReLU(nn.Module):
    """`fused_leaky_relu` with its own bias (the checkpoint's ``activate.bias`` and friends)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """upfirdn2d with the checkpoint's `kernel` buffer (outer(taps)/sum x `gain`)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], up: int = 1, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * gain)
        self.pad = pad
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad)


class EqualConv2d(nn.Module):
    """Bias-free conv whose weight is stored unscaled and multiplied by 1/sqrt(fan_in) at run time."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with run-time scaling lr_mul/sqrt(in) (bias x lr_mul), optionally fused leaky ReLU."""

    def __init__(
        self, din: int, dout: int, lr_mul: float = 1.0, bias_init: float = 0.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din) / lr_mul)
        self.bias = nn.Parameter(torch.full((dout,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(din)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class ModulatedConv2d(nn.Module):
    """Modulated conv; the upsampling variant is a stride-2 transposed conv followed by a blur."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_taps: Sequence[float] = BLUR_TAPS,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel))
        if upsample:
            # trims the (2H + k - 2) transposed-conv output back to exactly 2H
            p = len(blur_taps) - 2 - (kernel - 1)
            self.blur = Blur(blur_taps, pad=((p + 1) // 2 + 1, p // 2 + 1), gain=4)
        self.modulation = EqualLinear(style_dim, cin, bias_init=1)
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        weights = modulate(self.weight * self.scale, self.modulation(style), self.demodulate)
        if not self.upsample:
            return per_sample_conv(x, weights, padding=weights.shape[-1] // 2)
        b, cin, h, w = x.shape
        _, cout, _, k, _ = weights.shape
        # a transposed conv takes its weight as (in, out, k, k) per group
        transposed = weights.transpose(1, 2).reshape(b * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), transposed, stride=2, groups=b)
        return self.blur(out.reshape(b, -1, *out.shape[2:]))


class NoiseInjection(nn.Module):
    """Adds (or, in GPEN, concatenates on the channel axis) `weight` x the given map."""

    def __init__(self, concat: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.concat = concat

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.concat:
            return torch.cat((x, self.weight * noise), dim=1)
        return x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d 3x3, noise injection (the encoder map), fused leaky ReLU."""

    def __init__(
        self, cin: int, cout: int, style_dim: int, upsample: bool, blur_taps: Sequence[float], concat: bool
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection(concat)
        self.activate = FusedLeakyReLU(cout * 2 if concat else cout)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus the upsampled previous RGB."""

    def __init__(self, cin: int, style_dim: int, upsample: bool, blur_taps: Sequence[float]) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            p = len(blur_taps) - 2
            self.upsample = Blur(blur_taps, pad=((p + 1) // 2 + 1, p // 2), up=2, gain=4)
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class Generator(nn.Module):
    """StyleGAN2 decoder (8-layer mapping MLP, one w for every layer)."""

    def __init__(
        self,
        size: int,
        style_dim: int,
        n_mlp: int,
        channel_multiplier: float,
        narrow: float,
        blur_taps: Sequence[float],
        lr_mlp: float,
        isconcat: bool,
    ) -> None:
        super().__init__()
        mult = 2 if isconcat else 1
        ch = channel_table(channel_multiplier, narrow)
        mlp = (EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp))
        self.style = nn.Sequential(PixelNorm(), *mlp)
        self.input = ConstantInput(ch[4], "input")
        self.conv1 = StyledConv(ch[4], ch[4], style_dim, False, blur_taps, isconcat)
        self.to_rgb1 = ToRGB(ch[4] * mult, style_dim, False, blur_taps)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for level in range(3, int(math.log2(size)) + 1):
            cout = ch[2**level]
            self.convs.append(StyledConv(cin * mult, cout, style_dim, True, blur_taps, isconcat))
            self.convs.append(StyledConv(cout * mult, cout, style_dim, False, blur_taps, isconcat))
            self.to_rgbs.append(ToRGB(cout * mult, style_dim, True, blur_taps))
            cin = cout

    def forward(self, code: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode `code` (B, style_dim); ``noise[i]`` is the map StyledConv i receives (conv1 first)."""
        w = self.style(code)
        out = self.conv1(self.input(w.shape[0]), w, noise[0])
        skip = self.to_rgb1(out, w)
        for j, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * j](out, w, noise[2 * j + 1])
            out = self.convs[2 * j + 1](out, w, noise[2 * j + 2])
            skip = to_rgb(out, w, skip)
        return skip


def _encoder_layer(cin: int, cout: int, kernel: int, blur_taps: Sequence[float] | None) -> nn.Sequential:
    """EqualConv2d + fused leaky ReLU; with `blur_taps`, a blur and stride 2 first (halves the size)."""
    if blur_taps is None:
        layers: list[nn.Module] = [EqualConv2d(cin, cout, kernel, padding=kernel // 2)]
    else:
        p = len(blur_taps) - 2 + kernel - 1
        layers = [Blur(blur_taps, pad=((p + 1) // 2, p // 2)), EqualConv2d(cin, cout, kernel, stride=2)]
    return nn.Sequential(nn.Sequential(*layers, FusedLeakyReLU(cout)))


class FullGenerator(nn.Module):
    """GPEN: encoder ``ecd0..ecdN`` + ``final_linear`` code, StyleGAN2 ``generator``.

    Defaults are the GPEN-BFR-512 configuration video-retalking uses.
    """

    def __init__(
        self,
        *,
        size: int = 512,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: float = 2,
        narrow: float = 1,
        blur_kernel: Sequence[float] = BLUR_TAPS,
        lr_mlp: float = 0.01,
        isconcat: bool = True,
    ) -> None:
        super().__init__()
        self.size = size
        self.generator = Generator(size, style_dim, n_mlp, channel_multiplier, narrow, blur_kernel, lr_mlp, isconcat)
        ch = channel_table(channel_multiplier, narrow)
        log_size = int(math.log2(size))
        self.ecd0 = _encoder_layer(3, ch[size], 1, None)
        for i in range(1, log_size - 1):  # size/2 ... 4 px
            setattr(self, f"ecd{i}", _encoder_layer(ch[size >> (i - 1)], ch[size >> i], 3, blur_kernel))
        self.encoder_names = [f"ecd{i}" for i in range(log_size - 1)]
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 4 * 4, style_dim, activate=True))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Restore `image`; see the module docstring for the contract."""
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"image must be (B, 3, {self.size}, {self.size}), got {tuple(image.shape)}")
        feats = []
        x = image
        for name in self.encoder_names:
            x = getattr(self, name)(x)
            feats.append(x)
        code = self.final_linear(x.flatten(1))
        # conv1 gets the 4x4 map, then both StyledConvs of each finer level get that level's map
        noise = [feats[-1]] + [f for f in reversed(feats[:-1]) for _ in range(2)]
        return self.generator(code, noise)


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """State_dict of ``GPEN-BFR-512.pth`` for a strict load.

    The official file is a plain state_dict; a GPEN training checkpoint's
    ``'g_ema'`` entry and DataParallel ``module.`` prefixes are accepted too.
    """
    return clean_state_dict(checkpoint, "g_ema")
