"""Architectures of the sweep, built here with Keras 3 alone (keras.applications with weights=None, and
small blocks written out), so nothing is downloaded. Random weights: for speed and coverage only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Arch:
    build: Callable[[int], Any]   # input size → a Keras model taking raw 0..255 RGB pixels
    task: str | None = None       # convert's --task (None: inferred)
    note: str = ""


def _app(name: str, **kw) -> Callable[[int], Any]:
    def build(size: int):
        import keras

        return getattr(keras.applications, name)(input_shape=(size, size, 3), weights=None, **kw)
    return build


def _scaled(size: int, body: Callable[[Any], Any], name: str):
    """A model taking raw pixels: Rescaling(1/255), then ``body``."""
    import keras

    inp = keras.Input((size, size, 3), name="pixels")
    return keras.Model(inp, body(keras.layers.Rescaling(1 / 255)(inp)), name=name)


def vit_block(size: int):
    """A MobileViT/ViT-like block: patch embedding, two pre-norm transformer blocks, LayerNorm head."""
    from keras import layers as L

    def body(x):
        x = L.Conv2D(64, 3, strides=2, padding="same", activation="swish")(x)
        x = L.Conv2D(96, 8, strides=8)(x)
        n = (size // 16) ** 2
        x = L.Reshape((n, 96))(x)
        for _ in range(2):
            h = L.LayerNormalization()(x)
            x = L.Add()([x, L.MultiHeadAttention(4, 24)(h, h)])
            h = L.LayerNormalization()(x)
            x = L.Add()([x, L.Dense(96)(L.Dense(192, activation="gelu")(h))])
        x = L.GlobalAveragePooling1D()(L.LayerNormalization()(x))
        return L.Dense(1000, activation="softmax")(x)
    return _scaled(size, body, "vit_block")


def convnext_block(size: int):
    """A ConvNeXt-like stem and two stages of blocks (7×7 depthwise, LayerNorm, GELU MLP, residual)."""
    from keras import layers as L

    def body(x):
        x = L.LayerNormalization(epsilon=1e-6)(L.Conv2D(48, 4, strides=4)(x))
        for width in (48, 96):
            if width != 48:
                x = L.Conv2D(width, 2, strides=2)(L.LayerNormalization(epsilon=1e-6)(x))
            for _ in range(2):
                h = L.LayerNormalization(epsilon=1e-6)(L.DepthwiseConv2D(7, padding="same")(x))
                x = L.Add()([x, L.Dense(width)(L.Dense(4 * width, activation="gelu")(h))])
        x = L.LayerNormalization(epsilon=1e-6)(L.GlobalAveragePooling2D()(x))
        return L.Dense(1000, activation="softmax")(x)
    return _scaled(size, body, "convnext_block")


def regnet_like(size: int, se: bool):
    """RegNetX/Y-like (keras.applications in Keras 3 has no RegNet): a stride-2 stem, then stages of X blocks
    (1×1, 3×3 grouped convolution of group width 8, 1×1, residual), with squeeze-excitation for Y."""
    from keras import layers as L

    def block(x, width: int, stride: int):
        h = L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 1, use_bias=False)(x)))
        h = L.Conv2D(width, 3, strides=stride, padding="same", groups=width // 8, use_bias=False)(h)
        h = L.ReLU()(L.BatchNormalization()(h))
        if se:
            s = L.GlobalAveragePooling2D(keepdims=True)(h)
            s = L.Conv2D(width, 1, activation="sigmoid")(L.Conv2D(max(8, width // 4), 1, activation="relu")(s))
            h = L.Multiply()([h, s])
        h = L.BatchNormalization()(L.Conv2D(width, 1, use_bias=False)(h))
        if stride != 1 or x.shape[-1] != width:
            x = L.BatchNormalization()(L.Conv2D(width, 1, strides=stride, use_bias=False)(x))
        return L.ReLU()(L.Add()([x, h]))

    def body(x):
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)))
        for width, depth in ((24, 1), (56, 1), (152, 4), (368, 7)):
            for i in range(depth):
                x = block(x, width, 2 if i == 0 else 1)
        return L.Dense(1000, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return _scaled(size, body, "regnety_like" if se else "regnetx_like")


def _aspp(x, width: int, rates: tuple[int, ...], classes: int, upsample: int):
    from keras import layers as L

    branches = [L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 1, use_bias=False)(x)))]
    for r in rates:
        branches.append(L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 3, padding="same", dilation_rate=r,
                                                                 use_bias=False)(x))))
    pooled = L.GlobalAveragePooling2D(keepdims=True)(x)
    pooled = L.ReLU()(L.Conv2D(width, 1)(pooled))
    branches.append(L.UpSampling2D(size=(x.shape[1], x.shape[2]))(pooled))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 1, use_bias=False)(L.Concatenate()(branches))))
    h = L.Conv2D(classes, 1)(h)
    return L.Softmax()(L.UpSampling2D(size=upsample, interpolation="bilinear")(h))


def deeplabv3_resnet50(size: int):
    """DeepLabV3-like: ResNet50 (weights=None, stride 32) with an ASPP head, 21 classes at the input size (~26M
    params), in one flat graph (the backbone's layers are the model's own, so every PTQ step sees them)."""
    import keras

    def body(x):
        backbone = keras.applications.ResNet50(include_top=False, weights=None, input_tensor=x)
        return _aspp(backbone.output, 64, (2, 4), 21, 32)
    return _scaled(size, body, "deeplabv3_resnet50")


def deeplabv3_small(size: int):
    """A small DeepLabV3-like: MobileNetV2 (alpha 0.35, stride 16 features) with an ASPP head, 21 classes."""
    import keras

    def body(x):
        backbone = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35, input_tensor=x)
        return _aspp(backbone.get_layer("block_13_expand_relu").output, 64, (2, 4), 21, 16)
    return _scaled(size, body, "deeplabv3_small")


def hed(size: int):
    """HED-like edge detector: VGG-style stages, a side output per stage upsampled to the input, fused to one
    sigmoid map (1, H, W, 1)."""
    from keras import layers as L

    def body(x):
        sides = []
        for stage, (width, convs) in enumerate(((32, 2), (64, 2), (96, 3), (128, 3))):
            if stage:
                x = L.MaxPooling2D()(x)
            for _ in range(convs):
                x = L.Conv2D(width, 3, padding="same", activation="relu")(x)
            side = L.Conv2D(1, 1)(x)
            sides.append(L.UpSampling2D(2 ** stage, interpolation="bilinear")(side) if stage else side)
        return L.Activation("sigmoid", name="edges")(L.Conv2D(1, 1)(L.Concatenate()(sides)))
    return _scaled(size, body, "hed")


ARCHS: dict[str, Arch] = {
    "mobilenetv3small": Arch(_app("MobileNetV3Small")),
    "mobilenetv3large": Arch(_app("MobileNetV3Large")),
    "efficientnetv2b0": Arch(_app("EfficientNetV2B0")),
    "convnexttiny": Arch(_app("ConvNeXtTiny"), note="LayerNormalization"),
    "regnetx_like": Arch(lambda size: regnet_like(size, False), note="RegNetX-200MF-like (grouped convolutions)"),
    "regnety_like": Arch(lambda size: regnet_like(size, True), note="RegNetY-200MF-like (grouped convolutions, SE)"),
    "vit_block": Arch(vit_block, note="MultiHeadAttention, LayerNormalization, GELU"),
    "convnext_block": Arch(convnext_block, note="LayerNormalization, GELU"),
    "deeplabv3_small": Arch(deeplabv3_small, "segmentation"),
    "hed": Arch(hed, note="raw map output"),
    "deeplabv3_resnet50": Arch(deeplabv3_resnet50, "segmentation", "~26M params; the memory check"),
}
