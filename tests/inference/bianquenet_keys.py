"""Expected state-dict keys and shapes of the released BianqueNet checkpoint, written from the spec
(shared/spec/bianquenet.md section 2.7), independently of inference/model.py.

``expected_checkpoint_table()`` returns {key (with ``module.`` prefix): shape tuple}.
"""

from __future__ import annotations

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{n}": ((c,) if n != "num_batches_tracked" else ()) for n in BN}


def _backbone() -> dict[str, tuple[int, ...]]:
    t: dict[str, tuple[int, ...]] = {"module.backbone.conv1.weight": (64, 3, 7, 7)}
    t.update(_bn("module.backbone.bn1", 64))
    cin = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 23, 3)), start=1):
        for b in range(n):
            p = f"module.backbone.layer{li}.{b}"
            t[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            t.update(_bn(f"{p}.bn1", planes))
            t[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            t.update(_bn(f"{p}.bn2", planes))
            t[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            t.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:
                t[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                t.update(_bn(f"{p}.downsample.1", planes * 4))
            cin = planes * 4
    return t


def _swin(name: str, cin: int, d: int) -> dict[str, tuple[int, ...]]:
    p = f"module.classifier.{name}.stage1"
    t: dict[str, tuple[int, ...]] = {
        f"{p}.patch_partition.linear.weight": (d, cin),
        f"{p}.patch_partition.linear.bias": (d,),
    }
    for blk in (0, 1):
        q = f"{p}.layers.0.{blk}"
        t[f"{q}.attention_block.fn.norm.weight"] = (d,)
        t[f"{q}.attention_block.fn.norm.bias"] = (d,)
        t[f"{q}.attention_block.fn.fn.to_qkv.weight"] = (288, d)
        t[f"{q}.attention_block.fn.fn.to_out.weight"] = (d, 96)
        t[f"{q}.attention_block.fn.fn.to_out.bias"] = (d,)
        t[f"{q}.attention_block.fn.fn.pos_embedding"] = (15, 15)
        if blk == 1:
            t[f"{q}.attention_block.fn.fn.upper_lower_mask"] = (64, 64)
            t[f"{q}.attention_block.fn.fn.left_right_mask"] = (64, 64)
        t[f"{q}.mlp_block.fn.norm.weight"] = (d,)
        t[f"{q}.mlp_block.fn.norm.bias"] = (d,)
        t[f"{q}.mlp_block.fn.fn.net.0.weight"] = (4 * d, d)
        t[f"{q}.mlp_block.fn.fn.net.0.bias"] = (4 * d,)
        t[f"{q}.mlp_block.fn.fn.net.2.weight"] = (d, 4 * d)
        t[f"{q}.mlp_block.fn.fn.net.2.bias"] = (d,)
    return t


def _head() -> dict[str, tuple[int, ...]]:
    c = "module.classifier"
    t: dict[str, tuple[int, ...]] = {}
    for i in range(4):
        t[f"{c}.psp.stages.{i}.1.weight"] = (512, 2048, 1, 1)
        t.update(_bn(f"{c}.psp.stages.{i}.2", 512))
    t[f"{c}.aspp.convs.0.0.weight"] = (256, 4096, 1, 1)
    t.update(_bn(f"{c}.aspp.convs.0.1", 256))
    for i in (1, 2, 3):
        t[f"{c}.aspp.convs.{i}.0.weight"] = (256, 4096, 3, 3)
        t.update(_bn(f"{c}.aspp.convs.{i}.1", 256))
    t[f"{c}.aspp.convs.4.1.weight"] = (256, 4096, 1, 1)
    t.update(_bn(f"{c}.aspp.convs.4.2", 256))
    t[f"{c}.aspp.project.0.weight"] = (256, 1280, 1, 1)
    t.update(_bn(f"{c}.aspp.project.1", 256))
    for name, cin, cout in (("conv1", 64, 4), ("layer1", 256, 16), ("layer2", 512, 32)):
        t[f"{c}.skip_{name}.project.0.weight"] = (cout, cin, 1, 1)
        t.update(_bn(f"{c}.skip_{name}.project.1", cout))
        t.update(_swin(f"swin_skip_{name}", cin, cout))
    for name, ch in (("64", 320), ("128", 352), ("256", 360)):
        t[f"{c}.fpn_{name}.project.0.weight"] = (ch, ch, 3, 3)
        t.update(_bn(f"{c}.fpn_{name}.project.1", ch))
    t[f"{c}.classifier.0.weight"] = (256, 1288, 3, 3)
    t.update(_bn(f"{c}.classifier.1", 256))
    t[f"{c}.classifier.3.weight"] = (14, 256, 1, 1)
    t[f"{c}.classifier.3.bias"] = (14,)
    return t


def expected_checkpoint_table() -> dict[str, tuple[int, ...]]:
    table = _backbone()
    table.update(_head())
    return table


EXPECTED_KEY_COUNT = 812
EXPECTED_BACKBONE_KEYS = 624
EXPECTED_PARAMETERS = 83_744_144
EXPECTED_TRAINABLE = 83_719_568
EXPECTED_STATE_ELEMENTS = 83_859_457
