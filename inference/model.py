"""BianqueNet re-implemented in plain torch (no torchvision/timm/einops).

Written from the prose description in ``shared/spec/bianquenet.md`` sections 2.1-2.7. Module attribute
names reproduce the original checkpoint's state-dict keys (without the ``module.`` DataParallel prefix),
including the odd nesting ``attention_block.fn.fn`` / ``mlp_block.fn.fn.net`` and the duplicated
``classifier.classifier``.

Deviation from the original code, none of which changes the state dict:
* the Swin relative-position index is a non-persistent buffer (moves with ``.to(device)``, CUDA-graph
  friendly) instead of a plain CPU tensor attribute;
* window attention uses ``F.scaled_dot_product_attention`` with the additive bias/mask (same maths);
* the backbone never downloads ImageNet weights.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from inference import upsampled_conv
from inference.variants import INPUT_SIZE_MULTIPLE, VariantConfig, get_variant


# --------------------------------------------------------------------------------------------- backbone
def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class Bottleneck(nn.Module):
    """torchvision-style v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Backbone(nn.Module):
    """ResNet at output stride 16 returning raw conv1, layer1, layer2 and layer4 features."""

    def __init__(self, cfg: VariantConfig):
        super().__init__()
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, cfg.stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._cin = cfg.stem_width
        self._dilation = 1
        self.layer1 = self._make_layer(block, cfg.layer_widths[0], cfg.layers[0], 1, False)
        self.layer2 = self._make_layer(block, cfg.layer_widths[1], cfg.layers[1], 2, False)
        self.layer3 = self._make_layer(block, cfg.layer_widths[2], cfg.layers[2], 2, False)
        self.layer4 = self._make_layer(block, cfg.layer_widths[3], cfg.layers[3], 2, True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type, planes: int, n: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._cin != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._cin, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self._cin, planes, stride, previous_dilation, downsample)]
        self._cin = planes * block.expansion
        blocks += [block(self._cin, planes, 1, self._dilation, None) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, scaled_from: int | None = None, scale: float = 1.0) -> dict[str, torch.Tensor]:
        """Feature maps for the head. ``scaled_from``/``scale`` (inference.range_scaling): the residual stream
        is multiplied by ``scale`` before layer-3 block ``scaled_from`` (``len(layer3)``: before layer 4), so
        ``out`` is ``scale`` times the true features when the blocks from there on had their shifts scaled too."""
        c1 = self.conv1(x)
        x = self.maxpool(self.relu(self.bn1(c1)))
        low = self.layer1(x)
        l2 = self.layer2(low)
        if scaled_from is None:
            out = self.layer4(self.layer3(l2))
        else:
            y = l2
            for i, block in enumerate(self.layer3):
                y = block(y * scale if i == scaled_from else y)
            out = self.layer4(y * scale if scaled_from >= len(self.layer3) else y)
        return {"conv1": c1, "low_level": low, "layer_2": l2, "out": out}


# ------------------------------------------------------------------------------------------------- DFE
def _conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = dilation * (k // 2)
    return [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class PSP(nn.Module):
    def __init__(self, cin: int, cbranch: int, bins: tuple[int, ...]):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), *_conv_bn_relu(cin, cbranch)) for b in bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x] + [F.interpolate(s(x), size=size, mode="bilinear", align_corners=True) for s in self.stages]
        return torch.cat(outs, dim=1)


class ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int], dropout: float):
        super().__init__()
        convs: list[nn.Module] = [nn.Sequential(*_conv_bn_relu(cin, cout))]
        convs += [nn.Sequential(*_conv_bn_relu(cin, cout, 3, r)) for r in rates]
        convs.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(convs)
        self.project = nn.Sequential(*_conv_bn_relu(cout * (len(rates) + 2), cout), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([c(x) for c in self.convs], dim=1))


class ConvBNReLU(nn.Module):
    """``SkipConv`` / ``Fpn_Conv``: conv (no bias), BN, ReLU under the attribute ``project``."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.project = nn.Sequential(*_conv_bn_relu(cin, cout, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


# ------------------------------------------------------------------------------------------------ Swin
def _half_mask(window: int, axis: str) -> torch.Tensor:
    """Additive (0/-inf) mask blocking attention between the two halves of a window along ``axis``.

    Token index t = row * window + col. For ``rows``, queries in the last ``window//2`` rows cannot see
    keys in the first rows and vice versa; ``cols`` likewise for columns.
    """
    d = window // 2
    idx = torch.arange(window * window)
    coord = idx // window if axis == "rows" else idx % window
    second_half = coord >= window - d
    blocked = second_half[:, None] != second_half[None, :]
    mask = torch.zeros(window * window, window * window)
    mask[blocked] = float("-inf")
    return mask


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) flat index into the (2w-1)^2 bias table for offset key - query."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"), -1)
    coords = coords.reshape(-1, 2)
    rel = coords[None, :, :] - coords[:, None, :] + (window - 1)  # [query, key]
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim, self.window, self.shifted = heads, head_dim, window, shifted
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.pos_embedding = nn.Parameter(torch.randn(2 * window - 1, 2 * window - 1))
        if shifted:
            self.upper_lower_mask = nn.Parameter(_half_mask(window, "rows"), requires_grad=False)
            self.left_right_mask = nn.Parameter(_half_mask(window, "cols"), requires_grad=False)
        self.register_buffer("relative_index", relative_position_index(window), persistent=False)
        self.to_out = nn.Linear(inner, dim)

    def _bias(self, n_h: int, n_w: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive attention bias, broadcastable to (B, n_windows * heads, n, n)."""
        n = self.window * self.window
        bias = self.pos_embedding.reshape(-1)[self.relative_index].to(dtype)  # (n, n)
        if not self.shifted:
            return bias.reshape(1, 1, n, n)
        full = bias.expand(n_h, n_w, n, n).clone()
        full[-1] = full[-1] + self.upper_lower_mask.to(dtype)  # last row of windows
        full[:, -1] = full[:, -1] + self.left_right_mask.to(dtype)  # last column of windows
        return full[:, :, None].expand(n_h, n_w, self.heads, n, n).reshape(1, n_h * n_w * self.heads, n, n)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
               use_sdpa: bool) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_dim) + bias) v; SDPA on CUDA (fused kernels), plain maths on CPU
        (avoids SDPA's CPU masked-row checks)."""
        if use_sdpa:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        scores = torch.matmul(q, k.transpose(-1, -2)).mul_(self.head_dim**-0.5).add_(bias)
        return torch.matmul(scores.softmax(dim=-1), v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, dim)
        ws, d = self.window, self.window // 2
        if self.shifted:
            x = torch.roll(x, shifts=(-d, -d), dims=(1, 2))
        b, h, w, _ = x.shape
        n_h, n_w = h // ws, w // ws
        # 4-D (B, windows*heads, tokens, head_dim) so that fused SDPA kernels apply on CUDA
        qkv = self.to_qkv(x).view(b, n_h, ws, n_w, ws, 3, self.heads, self.head_dim)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, b, n_h * n_w * self.heads, ws * ws, self.head_dim)
        q, k, v = qkv.unbind(0)
        out = self.attend(q, k, v, self._bias(n_h, n_w, q.dtype), use_sdpa=q.is_cuda)
        out = out.view(b, n_h, n_w, self.heads, ws, ws, self.head_dim).permute(0, 1, 4, 2, 5, 3, 6)
        out = self.to_out(out.reshape(b, h, w, self.heads * self.head_dim))
        if self.shifted:
            out = torch.roll(out, shifts=(d, d), dims=(1, 2))
        return out


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SwinBlock(nn.Module):
    def __init__(self, cfg: VariantConfig, dim: int, shifted: bool):
        super().__init__()
        attn = WindowAttention(dim, cfg.swin_heads, cfg.swin_head_dim, cfg.swin_window, shifted)
        self.attention_block = Residual(PreNorm(dim, attn))
        self.mlp_block = Residual(PreNorm(dim, FeedForward(dim, dim * cfg.swin_mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_block(self.attention_block(x))


class PatchPartition(nn.Module):
    """Patch embedding with factor 1: a per-pixel Linear (equivalent to a 1x1 conv), NCHW -> NHWC."""

    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(cin, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.permute(0, 2, 3, 1))


class SwinStage(nn.Module):
    def __init__(self, cfg: VariantConfig, cin: int, dim: int):
        super().__init__()
        self.patch_partition = PatchPartition(cin, dim)
        self.layers = nn.ModuleList([nn.ModuleList([SwinBlock(cfg, dim, False), SwinBlock(cfg, dim, True)])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_partition(x)
        for pair in self.layers:
            for block in pair:
                x = block(x)
        return x.permute(0, 3, 1, 2)


class SwinSkip(nn.Module):
    """ST-SC: one Swin stage (patch embedding + regular and shifted block), output (B, d, H, W)."""

    def __init__(self, cfg: VariantConfig, cin: int, dim: int):
        super().__init__()
        self.stage1 = SwinStage(cfg, cin, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage1(x)


# ------------------------------------------------------------------------------------------------ head
def _up(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BianqueHead(nn.Module):
    """DFE (PSP then ASPP), conv + Swin skips, FPN-style top-down path, fusion and classifier."""

    def __init__(self, cfg: VariantConfig):
        super().__init__()
        e = cfg.expansion
        c_conv1, c_low, c_l2 = cfg.stem_width, cfg.layer_widths[0] * e, cfg.layer_widths[1] * e
        c_out = cfg.layer_widths[3] * e
        a = cfg.aspp_channels
        # registration order as in the original (aspp before psp): only affects key order
        self.aspp = ASPP(c_out + len(cfg.psp_bins) * cfg.psp_channels, a, cfg.aspp_rates, cfg.dropout)
        self.psp = PSP(c_out, cfg.psp_channels, cfg.psp_bins)
        s0, s1, s2 = cfg.skip_channels
        w0, w1, w2 = cfg.swin_dims
        self.skip_conv1 = ConvBNReLU(c_conv1, s0, 1)
        self.skip_layer1 = ConvBNReLU(c_low, s1, 1)
        self.skip_layer2 = ConvBNReLU(c_l2, s2, 1)
        self.swin_skip_conv1 = SwinSkip(cfg, c_conv1, w0)
        self.swin_skip_layer1 = SwinSkip(cfg, c_low, w1)
        self.swin_skip_layer2 = SwinSkip(cfg, c_l2, w2)
        p64 = s2 + w2 + a
        p128 = s1 + w1 + p64
        p256 = s0 + w0 + p128
        self.fpn_64 = ConvBNReLU(p64, p64, cfg.fpn_kernel)
        self.fpn_128 = ConvBNReLU(p128, p128, cfg.fpn_kernel)
        self.fpn_256 = ConvBNReLU(p256, p256, cfg.fpn_kernel)
        fused = a + p64 + p128 + p256
        self.fused_channels = fused
        # inference only: the fusion conv mixes the upsampled maps at their own resolution
        # (inference.upsampled_conv; same result up to summation order). A plain attribute, not in the state dict.
        self.factored_fusion = False
        self.factored_min_factor = upsampled_conv.MIN_FACTOR  # 2: also the x2 parts (fpn_128, fpn_256, fusion)
        for s in upsampled_conv.HEAD_FACTORS:  # the phase kernels, as non-persistent buffers (not in the state dict)
            kernel = upsampled_conv.phase_kernel(s, torch.float32, torch.device("cpu"))
            self.register_buffer(f"phase_kernel_x{s}", kernel, persistent=False)
        self.classifier = nn.Sequential(
            *_conv_bn_relu(fused, cfg.head_channels, cfg.head_kernel),
            nn.Conv2d(cfg.head_channels, cfg.num_classes, 1),
        )

    def forward(self, f: dict[str, torch.Tensor], dfe_scale: float = 1.0) -> torch.Tensor:
        """Logits at half input resolution. ``dfe_scale``: ``f["out"]`` and the PSP/ASPP shifts are ``dfe_scale``
        times their true values (inference.range_scaling); the ASPP output is brought back before the fusion."""
        dfe = self.aspp(self.psp(f["out"]))
        hidden = self.fuse(dfe if dfe_scale == 1.0 else dfe * (1.0 / dfe_scale), f)
        # final 1x1 conv in fp32 even under autocast: bf16 logits (8-bit mantissa) would create argmax ties
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return self.classifier[-1](hidden.float())

    def fuse(self, f32: torch.Tensor, f: dict[str, torch.Tensor]) -> torch.Tensor:
        """The top-down path and fusion from the DFE output ``f32`` and the skip features, up to (not
        including) the final 1x1 classifier conv."""
        l2, low, c1 = f["layer_2"], f["low_level"], f["conv1"]
        p64 = torch.cat([self.skip_layer2(l2), self.swin_skip_layer2(l2), _up(f32, l2.shape[-2:])], 1)
        skips128 = [self.skip_layer1(low), self.swin_skip_layer1(low)]
        skips256 = [self.skip_conv1(c1), self.swin_skip_conv1(c1)]
        p128 = torch.cat([*skips128, _up(p64, low.shape[-2:])], 1)
        if self.factored_fusion and upsampled_conv.supports(self.classifier[0]):
            return self._fuse_factored(f32, p64, skips128, p128, skips256)
        size = c1.shape[-2:]
        p256 = torch.cat([*skips256, _up(p128, size)], 1)
        fused = torch.cat(
            [_up(f32, size), _up(self.fpn_64(p64), size), _up(self.fpn_128(p128), size), self.fpn_256(p256)], 1
        )
        return self.classifier[:-1](fused)

    def _fuse_factored(self, f32: torch.Tensor, p64: torch.Tensor, skips128: list[torch.Tensor],
                       p128: torch.Tensor, skips256: list[torch.Tensor]) -> torch.Tensor:
        """The rest of ``fuse`` with the 3x3 convolutions of upsampled maps computed at the maps' own
        resolution (inference.upsampled_conv): the fusion conv's x8 and x4 parts, and with
        ``factored_min_factor`` 2 also its x2 part and the x2 parts of ``fpn_128`` / ``fpn_256`` (whose
        concatenated input is then never built at full size)."""
        k = self.factored_min_factor
        size = (int(skips256[0].shape[-2]), int(skips256[0].shape[-1]))
        if k <= 2 and all(upsampled_conv.supports(b.project[0]) for b in (self.fpn_128, self.fpn_256)):
            q128 = self._block_of_upsampled(self.fpn_128, [(x, 1) for x in skips128] + [(p64, 2)], p128.shape[-2:])
            q256 = self._block_of_upsampled(self.fpn_256, [(x, 1) for x in skips256] + [(p128, 2)], size)
        else:
            q128 = self.fpn_128(p128)
            q256 = self.fpn_256(torch.cat([*skips256, _up(p128, size)], 1))
        parts = [(f32, size[0] // f32.shape[-2]), (self.fpn_64(p64), size[0] // p64.shape[-2]),
                 (q128, size[0] // q128.shape[-2]), (q256, 1)]
        hidden = upsampled_conv.conv_of_upsampled(self.classifier[0], parts, size, min_factor=k,
                                                  kernels=self._phase_kernels())
        return self.classifier[1:-1](hidden)

    def _phase_kernels(self) -> dict[int, torch.Tensor]:
        return {s: getattr(self, f"phase_kernel_x{s}") for s in upsampled_conv.HEAD_FACTORS}

    def _block_of_upsampled(self, block: ConvBNReLU, parts: list[tuple[torch.Tensor, int]],
                            size: torch.Size | tuple[int, int]) -> torch.Tensor:
        """``block(cat(upsampled parts))`` with every upsampled part mixed at its own resolution."""
        hidden = upsampled_conv.conv_of_upsampled(block.project[0], parts, (int(size[0]), int(size[1])),
                                                  min_factor=2, kernels=self._phase_kernels())
        return block.project[1:](hidden)


class BianqueNet(nn.Module):
    """The segmentation network (class ``DeepLabV3`` in the original code): logits at input resolution."""

    def __init__(self, cfg: VariantConfig):
        super().__init__()
        self.config = cfg
        self.backbone = Backbone(cfg)
        self.classifier = BianqueHead(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % INPUT_SIZE_MULTIPLE or w % INPUT_SIZE_MULTIPLE:
            raise ValueError(f"BianqueNet input height and width must be multiples of 64, got {h}x{w}")
        logits = self.classifier(self.backbone(x))
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)


def build_model(variant: str | VariantConfig = "bianquenet") -> BianqueNet:
    """Build a network with random weights (nothing is downloaded). ``variant``: name or a config."""
    cfg = variant if isinstance(variant, VariantConfig) else get_variant(variant)
    return BianqueNet(cfg)


def factored_copy(net: BianqueNet, min_factor: int = upsampled_conv.MIN_FACTOR) -> BianqueNet:
    """A copy of ``net`` whose fusion computes convolutions of upsampled maps at the maps' own resolution
    (``BianqueHead.factored_fusion``, with ``factored_min_factor`` = ``min_factor``); ``net`` is unchanged."""
    twin = copy.deepcopy(net)
    twin.classifier.factored_fusion = True
    twin.classifier.factored_min_factor = min_factor
    return twin
