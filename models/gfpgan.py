"""GFPGAN v1.3 / v1.4 ("clean" architecture): U-Net conditions on a StyleGAN2 face decoder.

Provenance
    Paper: Xintao Wang, Yu Li, Honglun Zhang, Ying Shan, "Towards Real-World
    Blind Face Restoration with Generative Facial Prior", CVPR 2021
    (arXiv:2101.04061).
    Official repository: github.com/TencentARC/GFPGAN,
    ``gfpgan/archs/gfpganv1_clean_arch.py`` class ``GFPGANv1Clean`` (decoder
    ``StyleGAN2GeneratorCSFT`` on ``stylegan2_clean_arch.py``); video-retalking
    vendors the same files under ``third_part/GFPGAN``. This file is an
    independent re-implementation from the architecture description; submodule
    names reproduce the official checkpoint keys.
    Checkpoints: ``GFPGANv1.3.pth`` (what video-retalking uses) and
    ``GFPGANv1.4.pth``, same layout, from the TencentARC/GFPGAN GitHub
    releases; a dict with the weights under ``'params_ema'`` (``'params'`` in
    some files), strict load, including the 15 fixed noise maps
    ``stylegan_decoder.noises.noise*``. See `remap`.
    Licence: the repository is Apache-2.0 "except for the third-party
    components" its LICENSE lists, among them the StyleGAN2 code (modified from
    rosinality/stylegan2-pytorch, MIT; the LICENSE also reproduces NVIDIA's
    StyleGAN2 licence, non-commercial use only) and DFDNet (CC BY-NC-SA 4.0).
    No separate terms for the released weights are stated (not verified
    further). The weights are not distributed with this package.

Contract (``forward(image, noise=None)``)
    image: (B, 3, 512, 512) float, **RGB in [-1, 1]**: a face warped to the
           512x512 FFHQ template (GFPGANer: BGR uint8 -> RGB, /255,
           (x - 0.5) / 0.5).
    noise: what the 15 StyleConvs add, see `Noise`. The default uses the
           checkpoint's fixed noise maps (upstream ``randomize_noise=False``),
           so the output is deterministic; upstream inference draws fresh
           N(0, 1) maps on every call, which a ``torch.Generator`` reproduces.
    returns (B, 3, 512, 512), RGB, **no output activation** (upstream clamps
           to [-1, 1], then (x + 1) / 2 x 255, RGB -> BGR).
    The intermediate ``toRGB`` images of upstream's ``return_rgb=True`` are not
    produced (their weights are loaded but unused, as at inference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict
from ._stylegan import ConstantInput, PixelNorm, channel_table, modulate, per_sample_conv

__all__ = ["NUM_PARAMS", "GFPGANv1Clean", "Noise", "remap"]

NUM_PARAMS = 86_444_252
"""Trainable parameters; the state_dict adds 699,024 values of fixed noise maps."""

Noise = Union[Sequence[torch.Tensor], torch.Generator, None]
"""StyleConv noise: None = the stored maps, a generator = fresh N(0, 1) maps, or one tensor per layer."""

_SQRT2 = math.sqrt(2)


def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """conv-lrelu, bilinear resize by `scale`, conv-lrelu, plus a 1x1 skip of the resized input."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _resize(F.leaky_relu_(self.conv1(x), 0.2), self.scale)
        return F.leaky_relu_(self.conv2(out), 0.2) + self.skip(_resize(x, self.scale))


class ModulatedConv2d(nn.Module):
    """Modulated conv with the 1/sqrt(fan_in) scale baked into the stored weight."""

    def __init__(
        self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool, upsample: bool = False
    ) -> None:
        super().__init__()
        self.modulation = nn.Linear(style_dim, cin)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        weights = modulate(self.weight, self.modulation(style), self.demodulate)
        if self.upsample:
            x = _resize(x, 2)
        return per_sample_conv(x, weights, padding=weights.shape[-1] // 2)


class StyleConv(nn.Module):
    """Modulated 3x3 conv x sqrt(2), + `weight` x noise, + bias, leaky ReLU(0.2)."""

    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, cout, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | torch.Generator) -> torch.Tensor:
        out = self.modulated_conv(x, style).mul_(_SQRT2)  # in place: a fresh, large map
        if isinstance(noise, torch.Generator):
            b, _, h, w = out.shape
            noise = torch.randn((b, 1, h, w), generator=noise, device=noise.device, dtype=out.dtype)
        out += self.weight * noise.to(out)
        out += self.bias
        return F.leaky_relu_(out, 0.2)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus the bilinearly upsampled previous RGB."""

    def __init__(self, cin: int, style_dim: int) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        return out if skip is None else out + _resize(skip, 2)


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2 decoder whose features are modulated by spatial scale/shift maps (SFT)."""

    def __init__(
        self,
        out_size: int,
        num_style_feat: int,
        num_mlp: int,
        channel_multiplier: float,
        narrow: float,
        sft_half: bool,
    ) -> None:
        super().__init__()
        ch = channel_table(channel_multiplier, narrow)
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(num_style_feat, num_style_feat), nn.LeakyReLU(0.2)]
        self.style_mlp = nn.Sequential(*mlp)  # only used when the input is not already latent
        self.constant_input = ConstantInput(ch[4], "weight")
        self.style_conv1 = StyleConv(ch[4], ch[4], num_style_feat, upsample=False)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        log_size = int(math.log2(out_size))
        self.num_layers = 2 * (log_size - 2) + 1
        self.num_latent = 2 * log_size - 2
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)  # 4, 8, 8, 16, 16, ...
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        cin = ch[4]
        for level in range(3, log_size + 1):
            cout = ch[2**level]
            self.style_convs.append(StyleConv(cin, cout, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(cout, cout, num_style_feat, upsample=False))
            self.to_rgbs.append(ToRGB(cout, num_style_feat))
            cin = cout
        self.sft_half = sft_half

    def forward(
        self,
        latent: torch.Tensor,
        conditions: Sequence[torch.Tensor],
        noise: Sequence[torch.Tensor | torch.Generator],
    ) -> torch.Tensor:
        """`latent` (B, num_latent, S); `conditions` = [scale, shift] per level, coarsest first."""
        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1
            out = self.style_convs[i - 1](out, latent[:, i], noise[i])
            scale, shift = conditions[2 * j], conditions[2 * j + 1]
            if self.sft_half:
                same, sft = out.chunk(2, dim=1)
                out = torch.cat([same, sft * scale + shift], dim=1)
            else:
                out = out * scale + shift
            out = self.style_convs[i](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip


def _condition(channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3, leaky ReLU, conv 3x3: one SFT scale or shift map from the U-Net features."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(channels, out_channels, 3, 1, 1),
    )


class GFPGANv1Clean(nn.Module):
    """U-Net encoder -> per-layer latents + SFT conditions -> StyleGAN2 decoder.

    Defaults are the v1.3 / v1.4 inference configuration (GFPGANer, arch
    'clean'). The training-only options ``decoder_load_path`` and
    ``fix_decoder`` are not reproduced.
    """

    def __init__(
        self,
        *,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: float = 2,
        num_mlp: int = 8,
        input_is_latent: bool = True,
        different_w: bool = True,
        narrow: float = 1,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        self.out_size = out_size
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.num_style_feat = num_style_feat
        ch = channel_table(channel_multiplier, narrow * 0.5)  # the U-Net has half the decoder's width
        log_size = int(math.log2(out_size))
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList(
            ResBlock(ch[out_size >> i], ch[out_size >> (i + 1)], 0.5) for i in range(log_size - 2)
        )
        self.final_conv = nn.Conv2d(ch[4], ch[4], 3, 1, 1)
        ups = [(ch[2 ** (level - 1)], ch[2**level]) for level in range(3, log_size + 1)]
        self.conv_body_up = nn.ModuleList(ResBlock(cin, cout, 2) for cin, cout in ups)
        self.toRGB = nn.ModuleList(nn.Conv2d(cout, 3, 1) for _, cout in ups)
        num_latent = 2 * log_size - 2
        self.final_linear = nn.Linear(ch[4] * 4 * 4, num_latent * num_style_feat if different_w else num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half
        )
        sft = [cout if sft_half else 2 * cout for _, cout in ups]
        self.condition_scale = nn.ModuleList(_condition(cout, s) for (_, cout), s in zip(ups, sft))
        self.condition_shift = nn.ModuleList(_condition(cout, s) for (_, cout), s in zip(ups, sft))

    def forward(self, image: torch.Tensor, noise: Noise = None) -> torch.Tensor:
        """Restore `image`; see the module docstring for the contract.

        ``noise``: None (default) adds the checkpoint's fixed maps
        ``stylegan_decoder.noises.noise{i}``; a ``torch.Generator`` draws fresh
        N(0, 1) maps (B, 1, H_i, W_i) in layer order on the generator's device,
        like upstream's default ``randomize_noise=True``; a sequence gives one
        tensor per StyleConv, broadcastable to (B, 1, H_i, W_i) with
        H_i = W_i = 4, 8, 8, 16, 16, ..., 512, 512. Pass zeros for none.
        """
        if image.dim() != 4 or tuple(image.shape[1:]) != (3, self.out_size, self.out_size):
            raise ValueError(f"image must be (B, 3, {self.out_size}, {self.out_size}), got {tuple(image.shape)}")
        decoder = self.stylegan_decoder
        if noise is None:
            noise = [getattr(decoder.noises, f"noise{i}") for i in range(decoder.num_layers)]
        elif isinstance(noise, torch.Generator):
            noise = [noise] * decoder.num_layers
        elif len(noise) != decoder.num_layers:
            raise ValueError(f"noise needs {decoder.num_layers} maps, got {len(noise)}")

        feat = F.leaky_relu_(self.conv_body_first(image), 0.2)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu_(self.final_conv(feat), 0.2)
        style = self.final_linear(feat.flatten(1))
        if self.different_w:
            style = style.view(style.shape[0], -1, self.num_style_feat)
        if not self.input_is_latent:
            style = decoder.style_mlp(style)
        latent = style if style.dim() == 3 else style[:, None].expand(-1, decoder.num_latent, -1)

        conditions = []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
        return decoder(latent, conditions, noise)


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """State_dict of ``GFPGANv1.3.pth`` / ``GFPGANv1.4.pth`` for a strict load.

    The weights sit under ``'params_ema'`` (``'params'`` when a file has no
    EMA copy, as upstream's loader falls back to); ``module.`` prefixes are
    stripped.
    """
    wrapper = "params_ema" if "params_ema" in checkpoint else "params"
    return clean_state_dict(checkpoint, wrapper)
