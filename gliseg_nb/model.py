"""The U-Net of the report (chapter 4), built from small named blocks, and its variants.

A U-Net is an encoder that halves the image and doubles the features at each level, a
bottleneck, and a decoder that climbs back up, concatenating at each level the encoder's
features of the same size (the *skip connections*), so the output keeps fine detail.

``build_unet(Config.preset("report"))`` is the report's network exactly: 128 x 128 x 2 input,
levels of 32, 64, 128 and 256 filters, a 512-filter bottleneck with dropout 0.2, and a 1x1
softmax over the 4 classes: 7,759,908 parameters. The options of `gliseg_nb.Config`
change its width (``base_filters``), its depth (``depth``) and switch on the variants of
report section 4.5 that make sense in 2-D: batch normalisation, residual blocks (ResU-Net)
and attention gates on the skip connections (Attention U-Net).

Each block is a plain function of a Keras tensor, so a notebook can show it on its own:

>>> inputs = keras.Input((64, 64, 2))
>>> skip, down = encoder_block(inputs, 8, name="enc1")
"""

from __future__ import annotations

import keras
from keras import layers

from .config import Config

__all__ = [
    "conv_block",
    "encoder_block",
    "attention_gate",
    "decoder_block",
    "build_unet",
    "unet_levels",
    "plot_unet",
]

# The report's initialisation (``ker_init = 'he_normal'``), suited to ReLU.
KERNEL_INITIALIZER = "he_normal"


def conv_block(x, filters, *, batch_norm=False, residual=False, name="conv_block"):
    """Two 3x3 convolutions with ReLU, "same" padding: the unit of every U-Net level.

    Parameters
    ----------
    x : keras tensor
        Input feature map ``(batch, height, width, channels)``.
    filters : int
        Number of filters of both convolutions.
    batch_norm : bool, default=False
        Normalise each convolution's output before the ReLU (the convolutions then have no
        bias, which the normalisation would cancel).
    residual : bool, default=False
        Add the block's input to its output (projected by a 1x1 convolution when the number
        of channels differs), as in ResU-Net: gradients get a short path through deep nets.
    name : str, default="conv_block"
        Prefix of the layer names.

    Returns
    -------
    keras tensor
        ``(batch, height, width, filters)``.
    """
    shortcut = x
    for index in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer=KERNEL_INITIALIZER,
            name=f"{name}_conv{index}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        if residual and index == 2:
            # The addition comes before the last ReLU, as in He et al.'s residual unit.
            if shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(
                    filters, 1, padding="same", kernel_initializer=KERNEL_INITIALIZER,
                    name=f"{name}_shortcut",
                )(shortcut)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def encoder_block(x, filters, *, batch_norm=False, residual=False, name="encoder"):
    """One step down: `conv_block`, then 2x2 max-pooling.

    Parameters
    ----------
    x : keras tensor
        Input feature map.
    filters : int
        Filters of the level.
    batch_norm, residual : bool, default=False
        Passed to `conv_block`.
    name : str, default="encoder"
        Prefix of the layer names.

    Returns
    -------
    skip : keras tensor
        The level's features at full size, kept for the decoder's skip connection.
    down : keras tensor
        The same features pooled to half the height and width.
    """
    skip = conv_block(x, filters, batch_norm=batch_norm, residual=residual, name=name)
    down = layers.MaxPooling2D(pool_size=2, name=f"{name}_pool")(skip)
    return skip, down


def attention_gate(skip, gating, filters, *, name="attention"):
    """An additive attention gate (Oktay et al., 2018) that reweights a skip connection.

    The decoder's features (`gating`) say *where* to look; each pixel of `skip` is multiplied
    by a weight in [0, 1] computed from both, so that irrelevant encoder features (healthy
    tissue) are damped before the concatenation.

    Parameters
    ----------
    skip : keras tensor
        Encoder features ``(batch, h, w, c_skip)``.
    gating : keras tensor
        Decoder features of the same height and width.
    filters : int
        Channels of the intermediate 1x1 projections.
    name : str, default="attention"
        Prefix of the layer names.

    Returns
    -------
    keras tensor
        `skip` multiplied by the attention map, same shape as `skip`.
    """
    theta = layers.Conv2D(filters, 1, kernel_initializer=KERNEL_INITIALIZER, name=f"{name}_skip_proj")(skip)
    phi = layers.Conv2D(filters, 1, kernel_initializer=KERNEL_INITIALIZER, name=f"{name}_gate_proj")(gating)
    combined = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    weights = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_weights")(combined)
    # Multiply broadcasts the single weight channel over every skip channel.
    return layers.Multiply(name=f"{name}_apply")([skip, weights])


def decoder_block(x, skip, filters, *, batch_norm=False, residual=False, attention=False, name="decoder"):
    """One step up: 2x upsampling, a 2x2 convolution, concatenation with the skip, `conv_block`.

    This is the report's "up-convolution": ``UpSampling2D`` then ``Conv2D(filters, 2)`` with
    ReLU, rather than a transposed convolution.

    Parameters
    ----------
    x : keras tensor
        Features from the level below.
    skip : keras tensor
        Encoder features of this level (twice the height and width of `x`).
    filters : int
        Filters of the level.
    batch_norm, residual : bool, default=False
        Passed to `conv_block`.
    attention : bool, default=False
        Pass the skip through an `attention_gate` driven by the upsampled features first.
    name : str, default="decoder"
        Prefix of the layer names.

    Returns
    -------
    keras tensor
        ``(batch, 2 * height, 2 * width, filters)``.
    """
    x = layers.UpSampling2D(size=2, name=f"{name}_upsample")(x)
    x = layers.Conv2D(
        filters, 2, activation="relu", padding="same", kernel_initializer=KERNEL_INITIALIZER,
        name=f"{name}_upconv",
    )(x)
    if attention:
        skip = attention_gate(skip, x, max(filters // 2, 1), name=f"{name}_attention")
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")([skip, x])
    return conv_block(x, filters, batch_norm=batch_norm, residual=residual, name=name)


def unet_levels(config=None):
    """Filters of each encoder level and of the bottleneck.

    Parameters
    ----------
    config : Config, optional
        Settings; default=None means ``Config.preset("report")``.

    Returns
    -------
    encoder_filters : list of int
        ``base_filters * 2**level`` for each of the ``depth`` levels.
    bottleneck_filters : int
        ``base_filters * 2**depth``.
    """
    config = Config.preset("report") if config is None else config
    encoder_filters = [config.base_filters * 2**level for level in range(config.depth)]
    return encoder_filters, config.base_filters * 2**config.depth


def build_unet(config=None):
    """Build the U-Net described by `config` (the report's network by default).

    Parameters
    ----------
    config : Config, optional
        Uses ``input_shape`` (``context_slices`` adds channels), ``n_classes``,
        ``base_filters``, ``depth``, ``dropout``, ``batch_norm``, ``residual``,
        ``attention`` and ``outputs``. Default=None means ``Config.preset("report")``:
        7,759,908 parameters.

    Returns
    -------
    keras.Model
        A functional model named ``"unet"`` mapping ``(batch, size, size, channels)`` images
        to ``(batch, size, size, n_classes)`` class probabilities (a softmax layer named
        ``"class_probabilities"``), or with ``outputs="regions"`` to ``(batch, size, size,
        3)`` sigmoid probabilities of WT, TC and ET (``"region_probabilities"``). The last
        layer computes in float32 even under a mixed-precision policy, so probabilities and
        losses stay accurate.
    """
    config = Config.preset("report") if config is None else config
    if not isinstance(config, Config):
        raise ValueError(f"build_unet expects a gliseg_nb.Config, got {type(config).__name__}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    options = dict(batch_norm=config.batch_norm, residual=config.residual)
    encoder_filters, bottleneck_filters = unet_levels(config)

    inputs = keras.Input(shape=config.input_shape, name="image")
    skips = []
    x = inputs
    for level, filters in enumerate(encoder_filters, start=1):
        skip, x = encoder_block(x, filters, name=f"encoder{level}", **options)
        skips.append(skip)

    x = conv_block(x, bottleneck_filters, name="bottleneck", **options)
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="bottleneck_dropout")(x)

    for level in range(config.depth, 0, -1):
        x = decoder_block(
            x, skips[level - 1], encoder_filters[level - 1], attention=config.attention,
            name=f"decoder{level}", **options,
        )

    if config.outputs == "regions":
        # Three independent yes/no questions (WT, TC, ET), each with its own sigmoid.
        outputs = layers.Conv2D(3, 1, activation="sigmoid", dtype="float32", name="region_probabilities")(x)
    else:
        outputs = layers.Conv2D(
            config.n_classes, 1, activation="softmax", dtype="float32", name="class_probabilities"
        )(x)
    return keras.Model(inputs, outputs, name="unet")


# -- a figure of the architecture ------------------------------------------------------------
def _graphviz_available():
    try:
        import pydot

        pydot.Dot.create(pydot.Dot())
    except Exception:  # no pydot, or pydot without the graphviz binaries
        return False
    return True


def plot_unet(config=None, *, method="auto", ax=None, path=None):
    """Draw the U-Net's architecture for a notebook.

    Keras' ``plot_model`` needs pydot and the graphviz programs, which Colab and Binder may
    lack; without them (or with ``method="drawing"``) this draws the "U" itself with
    matplotlib: one box per level with its filters and feature-map size, the pooling steps
    going down, the up-convolutions going up and the skip connections across.

    Parameters
    ----------
    config : Config, optional
        Settings; default=None means ``Config.preset("report")``.
    method : {"auto", "graphviz", "drawing"}, default="auto"
        ``"auto"`` uses graphviz when available, else the drawing.
    ax : matplotlib.axes.Axes, optional
        Axes to draw in; default=None creates a figure.
    path : str or pathlib.Path, optional
        Also save the figure there; default=None saves nothing.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if method not in ("auto", "graphviz", "drawing"):
        raise ValueError(f"method must be 'auto', 'graphviz' or 'drawing', got {method!r}")
    config = Config.preset("report") if config is None else config
    use_graphviz = method == "graphviz" or (method == "auto" and _graphviz_available())
    if method == "graphviz" and not _graphviz_available():
        raise ValueError("method='graphviz' needs pydot and the graphviz programs; use method='drawing'")

    if ax is None:
        figure, ax = plt.subplots(figsize=(10, 5.5) if not use_graphviz else (8, 16))
    else:
        figure = ax.figure

    if use_graphviz:
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            image_path = os.path.join(folder, "unet.png")
            keras.utils.plot_model(build_unet(config), to_file=image_path, show_shapes=True, dpi=72)
            ax.imshow(plt.imread(image_path))
        ax.set_axis_off()
    else:
        _draw_u(ax, config)
    if path is not None:
        figure.savefig(path, bbox_inches="tight")
    return figure


def _draw_u(ax, config):
    """The matplotlib drawing behind `plot_unet`: boxes for levels, arrows for data flow."""
    from matplotlib.patches import FancyArrowPatch, Rectangle

    encoder_filters, bottleneck_filters = unet_levels(config)
    depth = config.depth
    box_width, box_height, step_y = 1.6, 0.7, 1.0

    def box(x, y, text, color):
        ax.add_patch(Rectangle((x, y), box_width, box_height, facecolor=color, edgecolor="0.2"))
        ax.text(x + box_width / 2, y + box_height / 2, text, ha="center", va="center", fontsize=8)

    def arrow(start, end, color="0.3", style="-|>", **kwargs):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=color, **kwargs))

    variant = []
    if config.batch_norm:
        variant.append("BN")
    if config.residual:
        variant.append("residual")
    block = "2x conv3x3" + (f" ({', '.join(variant)})" if variant else "")
    step_x = 1.3
    bottleneck_x = step_x * depth
    right = 2 * bottleneck_x  # x of the decoder column at the top level
    bottom_y = -depth * step_y
    for level, filters in enumerate(encoder_filters):
        size = config.image_size // 2**level
        y = -level * step_y
        x_left, x_right = step_x * level, right - step_x * level
        box(x_left, y, f"{filters} filters\n{size}x{size}", "#9ecae1")
        box(x_right, y, f"{filters} filters\n{size}x{size}", "#a1d99b")
        # Skip connection: copied across (through an attention gate in Attention U-Net).
        label = "attention gate" if config.attention else "copy + concat"
        arrow((x_left + box_width, y + box_height / 2), (x_right, y + box_height / 2), color="0.55",
              linestyle="--")
        if level == 0:  # the lower skips are too short to carry a label
            ax.text((x_left + box_width + x_right) / 2, y + box_height / 2 + 0.08, label, ha="center",
                    fontsize=7, color="0.4")
        # Down (max-pool) to the next level, up (upsample + conv 2x2) from it.
        next_left = x_left + step_x if level < depth - 1 else bottleneck_x
        next_right = x_right - step_x if level < depth - 1 else bottleneck_x
        arrow((x_left + box_width / 2, y), (next_left + box_width / 2, y - step_y + box_height), color="#d62728")
        arrow((next_right + box_width / 2, y - step_y + box_height), (x_right + box_width / 2, y), color="#2ca02c")

    size = config.image_size // 2**depth
    dropout = f", dropout {config.dropout:g}" if config.dropout else ""
    box(bottleneck_x, bottom_y, f"{bottleneck_filters} filters\n{size}x{size}", "#fdd0a2")
    ax.text(bottleneck_x + box_width / 2, bottom_y - 0.15, f"bottleneck{dropout}", ha="center", va="top",
            fontsize=8)
    # Input and output.
    ax.text(-0.1, box_height / 2, f"input\n{config.image_size}x{config.image_size}x{config.n_channels}",
            ha="right", va="center", fontsize=8)
    head = "sigmoid\nWT, TC, ET" if config.outputs == "regions" else f"softmax\n{config.n_classes} classes"
    ax.text(right + box_width + 0.1, box_height / 2, f"1x1 conv\n{head}", ha="left", va="center", fontsize=8)

    from matplotlib.lines import Line2D

    ax.legend(
        handles=[
            Line2D([], [], color="#d62728", label="max-pool 2x2"),
            Line2D([], [], color="#2ca02c", label="upsample 2x + conv 2x2"),
            Line2D([], [], color="0.55", linestyle="--", label="skip connection"),
        ],
        loc="lower right", fontsize=8, title=f"each box: {block}", title_fontsize=8,
    )
    n_params = build_unet(config).count_params()
    ax.set_title(f"U-Net: depth {depth}, {encoder_filters[0]} base filters, {n_params:,} parameters")
    ax.set_xlim(-1.6, right + box_width + 1.4)
    ax.set_ylim(bottom_y - 0.6, box_height + 0.5)
    ax.set_aspect("equal")
    ax.set_axis_off()
