"""Building blocks of VideoReTalking's LNet (also reached through ENet).

Provenance
    Re-implemented from the architecture of OpenTalker/video-retalking
    (``models/base_blocks.py``, ``models/ffc.py``, ``models/transformer.py``;
    Apache-2.0). The FFC follows "Fast Fourier Convolution" (Chi et al.,
    NeurIPS 2020) in the LaMa variant. Attribute names reproduce the official
    checkpoint keys; nothing here was copied from the reference code.

Every block is shape-agnostic in batch and follows the device/dtype of its
input, so the same modules run on CPU or CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AdaIN",
    "CrossAttentionTransformer",
    "FFCResBlock",
    "FFCResStack",
    "SNConv2d",
    "fold_time",
    "unfold_time",
]


def fold_time(x: torch.Tensor, time_dim: int) -> torch.Tensor:
    """(B, ..., T, ...) -> (T*B, ...) time-major, as the official models fold sequences."""
    x = x.movedim(time_dim, 0)
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(T*B, C, H, W) -> (B, C, T, H, W), inverse of `fold_time` for image outputs."""
    return x.reshape(-1, batch, *x.shape[1:]).permute(1, 2, 0, 3, 4)


class SNConv2d(nn.Module):
    """Conv2d whose kernel is divided by a stored largest-singular-value estimate.

    Matches the inference behaviour of ``torch.nn.utils.spectral_norm`` (the
    layout the official checkpoints use): ``weight_orig`` is the raw kernel,
    ``weight_u``/``weight_v`` the power-iteration vectors, and the kernel used
    is ``weight_orig / (u . (W v))`` with W the kernel flattened to
    (out, in*k*k). The vectors are used exactly as stored - no power iteration
    ever runs, in train or eval mode - so this layer is for inference only.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(cout))
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * kernel_size * kernel_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Default conv init plus converged u, v so an unloaded layer is well-scaled."""
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))
        mat = self.weight_orig.flatten(1)
        v = F.normalize(torch.randn(mat.shape[1]), dim=0)
        for _ in range(20):
            u = F.normalize(mat @ v, dim=0)
            v = F.normalize(mat.t() @ u, dim=0)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def effective_weight(self) -> torch.Tensor:
        sigma = torch.dot(self.weight_u, torch.mv(self.weight_orig.flatten(1), self.weight_v))
        return self.weight_orig / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.padding)


class AdaIN(nn.Module):
    """Instance norm whose scale and shift are predicted from a conditioning vector."""

    def __init__(self, channels: int, cond_dim: int = 512, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU())
        self.mlp_gamma = nn.Linear(hidden, channels)
        self.mlp_beta = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.mlp_shared(cond.flatten(1))
        gamma = self.mlp_gamma(h)[:, :, None, None]
        beta = self.mlp_beta(h)[:, :, None, None]
        return F.instance_norm(x, eps=1e-5) * (1 + gamma) + beta


class FourierUnit(nn.Module):
    """1x1 conv + BN + ReLU applied in the 2-D real-FFT domain ("ortho" norm).

    Real and imaginary parts become interleaved channels (2c = real of c,
    2c+1 = imaginary of c), the order the trained 1x1 kernel expects.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        spec = torch.view_as_real(torch.fft.rfft2(x, norm="ortho"))  # (b, c, h, w//2+1, 2)
        z = spec.permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, -1)
        z = F.relu(self.bn(self.conv_layer(z)))
        z = z.reshape(b, c, 2, h, -1).permute(0, 1, 3, 4, 2).contiguous()
        return torch.fft.irfft2(torch.view_as_complex(z), s=(h, w), norm="ortho")


class SpectralTransform(nn.Module):
    """Global branch of an FFC: squeeze to half width, Fourier unit with a skip, expand."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Sequential(nn.Conv2d(channels, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())
        self.fu = FourierUnit(half)
        self.conv2 = nn.Conv2d(half, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv1(x)
        return self.conv2(t + self.fu(t))


class FFC(nn.Module):
    """Fast Fourier Convolution, stride 1, equal in/out split, local Fourier unit off."""

    def __init__(self, local_ch: int, global_ch: int) -> None:
        super().__init__()

        def conv3(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, padding=1, bias=False, padding_mode="reflect")

        self.convl2l = conv3(local_ch, local_ch)
        self.convl2g = conv3(local_ch, global_ch)
        self.convg2l = conv3(global_ch, local_ch)
        self.convg2g = SpectralTransform(global_ch)

    def forward(self, x_l: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.convl2l(x_l) + self.convg2l(x_g), self.convl2g(x_l) + self.convg2g(x_g)


class _FFCStage(nn.Module):
    """FFC, then audio-conditioned AdaIN and LeakyReLU on each branch.

    The slope is 0.01 (nn.LeakyReLU's default), not the 0.1 used elsewhere in
    LNet: upstream never hands its nonlinearity down to this layer.
    """

    def __init__(self, local_ch: int, global_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.ffc = FFC(local_ch, global_ch)
        self.bn_l = AdaIN(local_ch, cond_dim)
        self.bn_g = AdaIN(global_ch, cond_dim)

    def forward(
        self, x_l: torch.Tensor, x_g: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_l, x_g = self.ffc(x_l, x_g)
        return F.leaky_relu(self.bn_l(x_l, cond), 0.01), F.leaky_relu(self.bn_g(x_g, cond), 0.01)


class FFCResBlock(nn.Module):
    """Two FFC stages with a residual; the last 75% of channels form the global branch."""

    def __init__(self, channels: int, cond_dim: int = 512) -> None:
        super().__init__()
        self.global_ch = int(channels * 0.75)
        local_ch = channels - self.global_ch
        self.conv1 = _FFCStage(local_ch, self.global_ch, cond_dim)
        self.conv2 = _FFCStage(local_ch, self.global_ch, cond_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        id_l, id_g = x[:, : -self.global_ch], x[:, -self.global_ch :]
        x_l, x_g = self.conv1(id_l, id_g, cond)
        x_l, x_g = self.conv2(x_l, x_g, cond)
        return torch.cat([id_l + x_l, id_g + x_g], dim=1)


class FFCResStack(nn.Module):
    """``res0`` .. ``res{n-1}`` FFC residual blocks sharing one conditioning vector."""

    def __init__(self, num_blocks: int, channels: int, cond_dim: int = 512) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        for i in range(num_blocks):
            self.add_module(f"res{i}", FFCResBlock(channels, cond_dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_blocks):
            x = getattr(self, f"res{i}")(x, cond)
        return x


class _CrossAttention(nn.Module):
    """Queries and keys from the masked tokens, values from the reference tokens."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(x)), heads(self.to_k(x)), heads(self.to_v(y)))
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _DualPreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.normx = nn.LayerNorm(dim)
        self.normy = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(self.normx(x), self.normy(y))


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        # Index 2 stands where the (p=0) dropout sat, keeping the checkpoint's `net.3`.
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Identity(), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossAttentionTransformer(nn.Module):
    """Pre-norm transformer over the spatial tokens of the masked-face feature map.

    Only the masked stream is updated; the reference map supplies the
    attention values at every layer.
    """

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _DualPreNorm(dim, _CrossAttention(dim, heads, dim_head)),
                    _PreNorm(dim, _FeedForward(dim, mlp_dim)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        y = y.flatten(2).transpose(1, 2)
        for attn, ff in self.layers:
            x = attn(x, y) + x
            x = ff(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)
