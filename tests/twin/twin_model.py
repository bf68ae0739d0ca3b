"""The PyTorch twin's model: the C engine's U-Net (ResNet18/34 or VGG16/19 encoder, with or
without batch norm; smp-style decoder; the Extended U-Net's branches from branches_twin.py), its
initialisation, and the photo normalisation constants. unet_twin.py trains it and writes dumps.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import branches_twin  # noqa: E402  (next to this file)

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
# the photo normalisation of io/image/normalise.c: (RGB / 255 - mean) / std per channel
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3)}
# torchvision's VGG configurations: output channels per 3x3 conv, "M" a 2x2 max pool
VGG_LAYERS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}
ARCH_LAYERS = dict(RESNET_LAYERS)
ARCH_LAYERS.update({name: layers for name, layers in VGG_LAYERS.items()})
ARCH_LAYERS.update({name + "_bn": layers for name, layers in VGG_LAYERS.items()})
DECODER_CHANNELS = (256, 128, 64, 32, 16)


def batch_norm(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn, + identity/downsample, relu."""

    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = batch_norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = batch_norm(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), batch_norm(channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """torchvision ResNet without avgpool/fc; returns the five feature maps f1..f5."""

    def __init__(self, layers):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (channels, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(in_channels, channels, stride if b == 0 else 1))
                in_channels = channels
            setattr(self, "layer%d" % (index + 1), nn.Sequential(*stage))

    def forward(self, x):
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return f1, f2, f3, f4, f5


class VGGEncoder(nn.Module):
    """segmentation_models_pytorch's VGG encoder: torchvision's `features` (3x3 convs with bias,
    BatchNorm after each in the _bn variants, ReLU, 2x2 max pools), split at the pools; returns
    f1..f5 = the outputs of blocks 2..5 (before their pool) and the last pool's output (the
    full-resolution block 1 output, smp's f0, is not used by the decoder)."""

    def __init__(self, layers, batch_norm_after_conv):
        super().__init__()
        modules, in_channels = [], 3
        for item in layers:
            if item == "M":
                modules.append(nn.MaxPool2d(2, stride=2))
                continue
            modules.append(nn.Conv2d(in_channels, item, 3, padding=1, bias=True))
            if batch_norm_after_conv:
                modules.append(batch_norm(item))
            modules.append(nn.ReLU(inplace=True))
            in_channels = item
        self.features = nn.Sequential(*modules)
        self.out_channels = tuple(c for i, c in enumerate(layers)
                                  if c != "M" and layers[i + 1] == "M")[1:] + (512,)

    def forward(self, x):
        features = []
        for module in self.features:
            if isinstance(module, nn.MaxPool2d):
                features.append(x)
            x = module(x)
        features.append(x)
        return tuple(features[1:])  # f1..f5


def conv_bn_relu(in_channels, out_channels):
    """segmentation_models_pytorch's Conv2dReLU with use_batchnorm=True."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        batch_norm(out_channels),
        nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    """extra_channels: the injected branch planes joined after the skip (Extended U-Net)."""

    def __init__(self, in_channels, skip_channels, out_channels, extra_channels=0):
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels + skip_channels + extra_channels, out_channels)
        self.conv2 = conv_bn_relu(out_channels, out_channels)

    def forward(self, x, skip=None, injected=None):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        if injected is not None:
            x = torch.cat([x, branches_twin.as_planes(injected, x)], dim=1)
        return self.conv2(self.conv1(x))


class UnetDecoder(nn.Module):
    """smp UnetDecoder, no center block, no attention; blocks in inject_blocks take the
    branches' injected vector as extra_channels planes."""

    def __init__(self, encoder_channels, extra_channels=0, inject_blocks=()):
        super().__init__()
        in_channels = (encoder_channels[4],) + DECODER_CHANNELS[:-1]  # f5, 256, 128, 64, 32
        skip_channels = tuple(reversed(encoder_channels[:4])) + (0,)  # f4, f3, f2, f1, none
        self.inject_blocks = tuple(inject_blocks)
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o, extra_channels if index in self.inject_blocks else 0)
            for index, (i, s, o) in enumerate(zip(in_channels, skip_channels, DECODER_CHANNELS)))

    def forward(self, f1, f2, f3, f4, f5, injected=None):
        x = f5
        for index, (block, skip) in enumerate(zip(self.blocks, (f4, f3, f2, f1, None))):
            x = block(x, skip, injected if index in self.inject_blocks else None)
        return x


class UNet(nn.Module):
    """branches: none (plain U-Net), trained (the Extended U-Net's class and box branches with
    their losses) or injected (their outputs also join the decoder blocks of inject_blocks).
    With branches forward returns (logits, class_logits, box_logits); the class branch's
    dropout multiplies by self.keep_mask, set before each training forward."""

    def __init__(self, arch="r18", classes=5, branches="none", inject_blocks=(0,), dropout=0.25):
        super().__init__()
        if arch not in ARCH_LAYERS:
            raise ValueError("arch must be one of %s" % ", ".join(ARCH_LAYERS))
        self.arch = arch
        if arch in RESNET_LAYERS:
            self.encoder = ResNetEncoder(RESNET_LAYERS[arch])
            encoder_channels = (64, 64, 128, 256, 512)  # f1..f5
        else:
            self.encoder = VGGEncoder(VGG_LAYERS[arch.replace("_bn", "")], arch.endswith("_bn"))
            encoder_channels = self.encoder.out_channels
        self.branches = branches
        self.keep_mask = None
        if branches != "none":
            self.class_branch = branches_twin.ClassBranch(2 * encoder_channels[4], classes, dropout)
            self.box_branch = branches_twin.BoxBranch(2 * encoder_channels[4], classes)
        injected = branches == "injected"
        self.decoder = UnetDecoder(encoder_channels, 5 * classes if injected else 0,
                                   inject_blocks if injected else ())
        self.segmentation_head = nn.Sequential(nn.Conv2d(DECODER_CHANNELS[-1], classes, 3, padding=1,
                                                         bias=True))

    def forward(self, x, presence=None):
        """presence [N, K] (0/1): injected instead of the class branch's probabilities
        (ground-truth injection, evaluate --ground-truth-injection)."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError("input height and width must be multiples of 32, got %s" %
                             (tuple(x.shape),))
        features = self.encoder(x)
        if self.branches == "none":
            return self.segmentation_head(self.decoder(*features))
        pooled = branches_twin.pooled_features(features[4])
        class_logits = self.class_branch(pooled, self.keep_mask)
        box_logits = self.box_branch(pooled)
        injected = None
        if self.branches == "injected":
            injected = branches_twin.injected_vector(class_logits, box_logits)
            if presence is not None:
                injected = torch.cat([presence.to(injected.dtype), injected[:, presence.shape[1]:]],
                                     dim=1)
        return (self.segmentation_head(self.decoder(*features, injected=injected)), class_logits,
                box_logits)


def init_parameters(model):
    """Encoder convs kaiming-normal (fan_out, relu); decoder convs kaiming-uniform (fan_in,
    relu); head and fully connected layers xavier-uniform with zero bias; BN weight 1, bias 0."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if name.startswith("encoder."):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif name.startswith("decoder."):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_model(arch="r18", classes=5, seed=1, branches="none", inject_blocks=(0,),
                dropout=0.25):
    torch.manual_seed(seed)
    model = UNet(arch, classes, branches, inject_blocks, dropout)
    init_parameters(model)
    return model
