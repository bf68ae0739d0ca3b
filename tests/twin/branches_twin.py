"""The Extended U-Net's branches for the PyTorch twin (tests/twin/unet_twin.py), mirroring
src/model/branches.c, loss.c and branch_targets.c: the class-presence and box branches on the
deepest features, their dropout draw, their targets from the label masks and the compound loss.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

BRANCH_HIDDEN = 512
BRANCH_MODES = ("none", "trained", "injected")
MASK64 = (1 << 64) - 1


def mix(z):
    """splitmix64's finaliser (branch_targets.h)."""
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
    return z ^ (z >> 31)


def dropout_keep_mask(seed, step, first_sample, samples, units, p):
    """float32 [samples, units]: 1/(1-p) where kept, 0 where dropped, as dropout_keep_mask."""
    base = mix((mix(seed) + step) & MASK64)
    kept = torch.tensor(1.0, dtype=torch.float32) / (1.0 - torch.tensor(p, dtype=torch.float32))
    mask = torch.zeros(samples, units, dtype=torch.float32)
    for s in range(samples):
        for u in range(units):
            element = (first_sample + s) * units + u
            draw = (mix((base + element) & MASK64) >> 11) * 2.0 ** -53
            if draw >= p:
                mask[s, u] = kept
    return mask


def branch_targets(labels, classes):
    """(presence [N,K], boxes [N,4K]) from u8 labels [N,H,W], as branch_targets_from_masks:
    every class counts, background included; boxes y0/H, x0/W, y1/H, x1/W with y1, x1
    exclusive, 0 where absent."""
    n, h, w = labels.shape
    presence = torch.zeros(n, classes, dtype=torch.float32)
    boxes = torch.zeros(n, classes, 4, dtype=torch.float32)
    for i in range(n):
        for k in range(classes):
            where = labels[i] == k
            if not bool(where.any()):
                continue
            rows = torch.nonzero(where.any(dim=1)).flatten()
            cols = torch.nonzero(where.any(dim=0)).flatten()
            presence[i, k] = 1.0
            boxes[i, k] = torch.tensor([float(rows[0]) / h, float(cols[0]) / w,
                                        float(rows[-1] + 1) / h, float(cols[-1] + 1) / w],
                                       dtype=torch.float32)
    return presence, boxes.reshape(n, 4 * classes)


class ClassBranch(nn.Module):
    """FC 512 + ReLU + BatchNorm + dropout (the shared draw) + FC to K logits."""

    def __init__(self, in_features, classes, dropout):
        super().__init__()
        self.fc1 = nn.Linear(in_features, BRANCH_HIDDEN)
        self.bn = nn.BatchNorm1d(BRANCH_HIDDEN, eps=1e-5, momentum=0.1)
        self.fc2 = nn.Linear(BRANCH_HIDDEN, classes)
        self.dropout = dropout

    def forward(self, pooled, keep_mask):
        hidden = self.bn(F.relu(self.fc1(pooled)))
        if self.training and self.dropout > 0:
            hidden = hidden * keep_mask.to(hidden.dtype)
        return self.fc2(hidden)


class BoxBranch(nn.Module):
    """FC 512 + ReLU + FC to 4K box logits (per class y0, x0, y1, x1)."""

    def __init__(self, in_features, classes):
        super().__init__()
        self.fc1 = nn.Linear(in_features, BRANCH_HIDDEN)
        self.fc2 = nn.Linear(BRANCH_HIDDEN, 4 * classes)

    def forward(self, pooled):
        return self.fc2(F.relu(self.fc1(pooled)))


def pooled_features(f5):
    """f5's global average and max pools, concatenated: [N, 2C]."""
    return torch.cat([F.adaptive_avg_pool2d(f5, 1), F.adaptive_max_pool2d(f5, 1)], dim=1).flatten(1)


def injected_vector(class_logits, box_logits):
    """[N, 5K]: the class probabilities then the boxes, what the decoder blocks receive."""
    return torch.cat([torch.sigmoid(class_logits), torch.sigmoid(box_logits)], dim=1)


def as_planes(vector, like):
    """The vector [N, C] tiled over like's H x W: [N, C, H, W]."""
    return vector[:, :, None, None].expand(-1, -1, like.shape[-2], like.shape[-1])


def compound_loss(ce, class_logits, box_logits, presence, boxes, class_weight, box_weight):
    """CE + w_cls x BCE (mean over N x K) + w_box x smooth-L1 of sigmoid(box logits) over the
    present classes' coordinates (their mean; 0 when none), as unet_loss."""
    bce = F.binary_cross_entropy_with_logits(class_logits, presence.to(class_logits.dtype))
    mask = presence.repeat_interleave(4, dim=1) > 0
    count = int(mask.sum())
    if count:
        box = F.smooth_l1_loss(torch.sigmoid(box_logits)[mask], boxes.to(box_logits.dtype)[mask],
                               reduction="sum", beta=1.0) / count
    else:
        box = box_logits.sum() * 0.0
    return ce + class_weight * bce + box_weight * box, bce, box
