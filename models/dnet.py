"""D-Net: VideoReTalking's expression stabiliser (a PIRenderer-style re-renderer).

Provenance
    Paper: Kun Cheng, Xiaodong Cun, Yong Zhang, Menghan Xia, Fei Yin, Mingrui Zhu,
    Xuan Wang, Jue Wang, Nannan Wang, "VideoReTalking: Audio-based Lip
    Synchronization for Talking Head Video Editing In the Wild", SIGGRAPH Asia 2022
    (arXiv:2211.14758). The network follows PIRenderer (Ren et al., "PIRenderer:
    Controllable Portrait Image Generation via Semantic Neural Rendering",
    ICCV 2021, github.com/RenYurui/PIRender).
    Official repository: github.com/OpenTalker/video-retalking (formerly
    vinthony/video-retalking), ``models/DNet.py`` with blocks from
    ``models/base_blocks.py`` and the warp from ``utils/flow_util.py``. This file is an
    independent re-implementation from the architecture description; submodule
    names reproduce the official checkpoint keys (including the ``warpping_net``
    spelling) so the weights load without renaming.
    Checkpoint: ``DNet.pt`` (Google-Drive folder of the official README, GitHub
    release v0.0.1 of vinthony/video-retalking): a training dict whose generator
    weights (EMA copy) sit under ``'net_G_ema'``; see `remap`.
    Weights licence: the repository is MIT-licensed and its README asks users to
    respect that licence and not to misuse the models; no separate weights licence
    is stated. The weights are not distributed with this package.

Contract (``forward(input_image, driving_source)``)
    input_image:    (B, 3, H, W) float, **RGB in [-1, 1]** (upstream: the 256x256 face
                    crop, PIL bicubic to 256, ``x / 255 * 2 - 1``). H and W must be
                    multiples of 32; the official use is 256x256.
    driving_source: (B, 73, 26) float, a 26-step window of 3DMM rows
                    (expression 64 | angles 3 | translation 3 | crop scale, tx, ty);
                    build it with `lipstream.models._face3d_coeffs.driving_window`.
    returns a dict:
        ``flow_field`` (B, 2, H/4, W/4): offsets in pixels of the H/4 x W/4 grid,
                       channel 0 = x, channel 1 = y;
        ``warp_image`` (B, 3, H, W): the input resampled by that flow;
        ``fake_image`` (B, 3, H, W): the refined face, tanh so in (-1, 1), RGB.
    Upstream keeps only ``fake_image``, clamps it to [-1, 1], maps it to uint8
    with ``(x + 1) / 2 * 255`` (truncation) and converts RGB -> BGR.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._state import clean_state_dict
from .layers import LayerNorm2d

__all__ = ["DNet", "NUM_PARAMS", "remap", "flow_to_deformation", "warp_image"]

NUM_PARAMS = 22_519_109
"""Trainable parameters (D-Net has no buffers, so this is also the state_dict size)."""

_SLOPE = 0.1  # every LeakyReLU of D-Net


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(_SLOPE)


class ADAIN(nn.Module):
    """Instance norm whose scale and shift are predicted from the motion descriptor."""

    def __init__(self, channels: int, descriptor_nc: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Linear(descriptor_nc, hidden), nn.ReLU())
        self.mlp_gamma = nn.Linear(hidden, channels)
        self.mlp_beta = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        hidden = self.mlp_shared(descriptor.reshape(descriptor.shape[0], -1))
        gamma = self.mlp_gamma(hidden)[:, :, None, None]
        beta = self.mlp_beta(hidden)[:, :, None, None]
        return normalized * (1 + gamma) + beta


class MappingNet(nn.Module):
    """Temporal 1-D conv stack: (B, 73, 26) coefficient window -> (B, 256, 1) descriptor."""

    def __init__(self, coeff_nc: int = 73, descriptor_nc: int = 256, layers: int = 3) -> None:
        super().__init__()
        self.layers = layers
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor_nc, kernel_size=7))
        for i in range(layers):
            block = nn.Sequential(_act(), nn.Conv1d(descriptor_nc, descriptor_nc, kernel_size=3, dilation=3))
            setattr(self, f"encoder{i}", block)

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        out = self.first(coeffs)  # 26 -> 20 steps
        for i in range(self.layers):
            # each dilated conv drops 3 steps at both ends; the residual is cropped to match
            out = getattr(self, f"encoder{i}")(out) + out[:, :, 3:-3]
        return out.mean(dim=2, keepdim=True)


class ADAINEncoderBlock(nn.Module):
    """Pre-activation down block: ADAIN, act, 4x4 stride-2 conv, then ADAIN, act, 3x3 conv."""

    def __init__(self, cin: int, cout: int, descriptor_nc: int) -> None:
        super().__init__()
        self.conv_0 = nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1)
        self.conv_1 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1)
        self.norm_0 = ADAIN(cin, descriptor_nc)
        self.norm_1 = ADAIN(cout, descriptor_nc)
        self.actvn = _act()

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_0(self.actvn(self.norm_0(x, z)))
        return self.conv_1(self.actvn(self.norm_1(x, z)))


class ADAINDecoderBlock(nn.Module):
    """Pre-activation x2 up block with a transposed-conv shortcut."""

    def __init__(self, cin: int, cout: int, hidden: int, descriptor_nc: int) -> None:
        super().__init__()
        up = dict(kernel_size=3, stride=2, padding=1, output_padding=1)
        self.conv_0 = nn.Conv2d(cin, hidden, kernel_size=3, stride=1, padding=1)
        self.conv_1 = nn.ConvTranspose2d(hidden, cout, **up)
        self.conv_s = nn.ConvTranspose2d(cin, cout, **up)
        self.norm_0 = ADAIN(cin, descriptor_nc)
        self.norm_1 = ADAIN(hidden, descriptor_nc)
        self.norm_s = ADAIN(cin, descriptor_nc)
        self.actvn = _act()

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.actvn(self.norm_s(x, z)))
        dx = self.conv_0(self.actvn(self.norm_0(x, z)))
        dx = self.conv_1(self.actvn(self.norm_1(dx, z)))
        return shortcut + dx


class ADAINEncoder(nn.Module):
    """Input conv then `layers` down blocks; returns every level (finest first) for the skips."""

    def __init__(self, image_nc: int, descriptor_nc: int, base_nc: int, max_nc: int, layers: int) -> None:
        super().__init__()
        self.layers = layers
        self.input_layer = nn.Conv2d(image_nc, base_nc, kernel_size=7, stride=1, padding=3)
        for i in range(layers):
            cin = min(base_nc * 2**i, max_nc)
            cout = min(base_nc * 2 ** (i + 1), max_nc)
            setattr(self, f"encoder{i}", ADAINEncoderBlock(cin, cout, descriptor_nc))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        out = self.input_layer(x)
        levels = [out]
        for i in range(self.layers):
            out = getattr(self, f"encoder{i}")(out, z)
            levels.append(out)
        return levels


class ADAINDecoder(nn.Module):
    """Up blocks for the coarsest `decoder_layers` levels, each output concatenated with its skip."""

    def __init__(
        self, descriptor_nc: int, base_nc: int, max_nc: int, encoder_layers: int, decoder_layers: int
    ) -> None:
        super().__init__()
        self.levels = list(range(encoder_layers - decoder_layers, encoder_layers))[::-1]
        for i in self.levels:
            cout = min(base_nc * 2**i, max_nc)
            cin = min(base_nc * 2 ** (i + 1), max_nc)
            if i != encoder_layers - 1:
                cin *= 2  # previous output + skip
            setattr(self, f"decoder{i}", ADAINDecoderBlock(cin, cout, cout, descriptor_nc))
        self.output_nc = 2 * min(base_nc * 2 ** self.levels[-1], max_nc)

    def forward(self, levels: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        skips = list(levels)
        out = skips.pop()
        for i in self.levels:
            out = getattr(self, f"decoder{i}")(out, z)
            out = torch.cat([out, skips.pop()], dim=1)
        return out


class ADAINHourglass(nn.Module):
    def __init__(
        self, image_nc: int, descriptor_nc: int, base_nc: int, max_nc: int, encoder_layers: int, decoder_layers: int
    ) -> None:
        super().__init__()
        self.encoder = ADAINEncoder(image_nc, descriptor_nc, base_nc, max_nc, encoder_layers)
        self.decoder = ADAINDecoder(descriptor_nc, base_nc, max_nc, encoder_layers, decoder_layers)
        self.output_nc = self.decoder.output_nc

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x, z), z)


def flow_to_deformation(flow: torch.Tensor) -> torch.Tensor:
    """Pixel flow (B, 2, h, w) -> absolute sampling grid (B, h, w, 2) in [-1, 1] units.

    The identity grid puts pixel centres 0 and w-1 at -1 and +1 (an align_corners=True
    style grid), although it is later sampled with align_corners=False: this matches
    the weights, do not "fix" it.
    """
    b, _, h, w = flow.shape
    xs = 2 * (torch.arange(w, device=flow.device, dtype=flow.dtype) / (w - 1)) - 1
    ys = 2 * (torch.arange(h, device=flow.device, dtype=flow.dtype) / (h - 1)) - 1
    identity = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=-1)
    offset = 2 * torch.cat([flow[:, :1] / (w - 1), flow[:, 1:] / (h - 1)], dim=1)
    return identity.unsqueeze(0) + offset.permute(0, 2, 3, 1)


def warp_image(image: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Resample `image` (B, C, H, W) at `deformation` (B, h, w, 2), resized bilinearly to H x W first."""
    h, w = image.shape[-2:]
    if deformation.shape[1:3] != (h, w):
        grid = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        deformation = grid.permute(0, 2, 3, 1)
    return F.grid_sample(image, deformation, mode="bilinear", padding_mode="zeros", align_corners=False)


class WarpingNet(nn.Module):
    """Predicts a quarter-resolution flow from image + descriptor and warps the image with it."""

    def __init__(
        self,
        image_nc: int = 3,
        descriptor_nc: int = 256,
        base_nc: int = 32,
        max_nc: int = 256,
        encoder_layers: int = 5,
        decoder_layers: int = 3,
    ) -> None:
        super().__init__()
        self.hourglass = ADAINHourglass(image_nc, descriptor_nc, base_nc, max_nc, encoder_layers, decoder_layers)
        nc = self.hourglass.output_nc
        self.flow_out = nn.Sequential(LayerNorm2d(nc), _act(), nn.Conv2d(nc, 2, kernel_size=7, stride=1, padding=3))

    def forward(self, image: torch.Tensor, descriptor: torch.Tensor) -> dict[str, torch.Tensor]:
        flow = self.flow_out(self.hourglass(image, descriptor))
        return {"flow_field": flow, "warp_image": warp_image(image, flow_to_deformation(flow))}


class ConvNormAct(nn.Module):
    """Conv -> LayerNorm2d -> LeakyReLU (optionally -> 2x2 average pool), as one `model` Sequential."""

    def __init__(self, cin: int, cout: int, kernel: int, pool: bool = False) -> None:
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel, stride=1, padding=kernel // 2)
        layers: list[nn.Module] = [conv, LayerNorm2d(cout), _act()]
        if pool:
            layers.append(nn.AvgPool2d(2))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UpConvNormAct(ConvNormAct):
    """Nearest x2 upsampling, then conv -> LayerNorm2d -> LeakyReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class FinalBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=7, stride=1, padding=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.model(x))


class FineADAINResBlock(nn.Module):
    """Residual block whose output is ``norm2(conv2(x), z) + x``.

    The official block also evaluates ``act(norm1(conv1(x), z))`` and then overwrites
    it, so conv1/norm1 carry trained weights that never reach the output. They are
    kept for the checkpoint keys and skipped here, which gives the same result.
    """

    def __init__(self, channels: int, descriptor_nc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.norm1 = ADAIN(channels, descriptor_nc)
        self.norm2 = ADAIN(channels, descriptor_nc)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(x), z) + x


class FineADAINResBlocks(nn.Module):
    def __init__(self, num_blocks: int, channels: int, descriptor_nc: int) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        for i in range(num_blocks):
            setattr(self, f"res{i}", FineADAINResBlock(channels, descriptor_nc))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_blocks):
            x = getattr(self, f"res{i}")(x, z)
        return x


class FineEncoder(nn.Module):
    """7x7 stem then `layers` conv+pool stages; returns every stage (finest first)."""

    def __init__(self, image_nc: int, base_nc: int, max_nc: int, layers: int) -> None:
        super().__init__()
        self.layers = layers
        self.first = ConvNormAct(image_nc, base_nc, 7)
        for i in range(layers):
            cin = min(base_nc * 2**i, max_nc)
            cout = min(base_nc * 2 ** (i + 1), max_nc)
            setattr(self, f"down{i}", ConvNormAct(cin, cout, 3, pool=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.first(x)
        levels = [x]
        for i in range(self.layers):
            x = getattr(self, f"down{i}")(x)
            levels.append(x)
        return levels


class FineDecoder(nn.Module):
    """Per level, coarsest first: descriptor-modulated res blocks, x2 up, plus a conv of the skip."""

    def __init__(
        self, image_nc: int, descriptor_nc: int, base_nc: int, max_nc: int, layers: int, num_blocks: int
    ) -> None:
        super().__init__()
        self.layers = layers
        for i in reversed(range(layers)):
            cin = min(base_nc * 2 ** (i + 1), max_nc)
            cout = min(base_nc * 2**i, max_nc)
            setattr(self, f"up{i}", UpConvNormAct(cin, cout, 3))
            setattr(self, f"res{i}", FineADAINResBlocks(num_blocks, cin, descriptor_nc))
            setattr(self, f"jump{i}", ConvNormAct(cout, cout, 3))
        self.final = FinalBlock(base_nc, image_nc)

    def forward(self, levels: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        skips = list(levels)
        out = skips.pop()
        for i in reversed(range(self.layers)):
            out = getattr(self, f"res{i}")(out, z)
            out = getattr(self, f"up{i}")(out)
            out = getattr(self, f"jump{i}")(skips.pop()) + out
        return self.final(out)


class EditingNet(nn.Module):
    """Refines the warped face using the source face and the descriptor."""

    def __init__(
        self,
        image_nc: int = 3,
        descriptor_nc: int = 256,
        layers: int = 3,
        base_nc: int = 64,
        max_nc: int = 256,
        num_res_blocks: int = 2,
    ) -> None:
        super().__init__()
        self.encoder = FineEncoder(2 * image_nc, base_nc, max_nc, layers)
        self.decoder = FineDecoder(image_nc, descriptor_nc, base_nc, max_nc, layers, num_res_blocks)

    def forward(self, image: torch.Tensor, warped: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(torch.cat([image, warped], dim=1)), descriptor)


class DNet(nn.Module):
    """Re-renders a face with the head pose / expression given by a coefficient window."""

    def __init__(self) -> None:
        super().__init__()
        self.mapping_net = MappingNet()
        self.warpping_net = WarpingNet()
        self.editing_net = EditingNet()

    def forward(self, input_image: torch.Tensor, driving_source: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [-1, 1] image (B,3,H,W) + window (B,73,26) -> flow_field, warp_image, fake_image."""
        descriptor = self.mapping_net(driving_source)
        out = self.warpping_net(input_image, descriptor)
        out["fake_image"] = self.editing_net(input_image, out["warp_image"], descriptor)
        return out


def remap(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Turn ``DNet.pt`` (or a bare state_dict) into this module's state_dict.

    Unwraps ``checkpoint['net_G_ema']`` (the EMA generator the official inference
    loads) and strips a leading ``module.``. Upstream loads with strict=False; here
    every key is kept so a strict load reports any surprise instead of hiding it.
    Pure: the input is not modified and tensors are not copied.
    """
    return clean_state_dict(checkpoint, "net_G_ema")
