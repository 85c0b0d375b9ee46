"""The U-Net builder: the report's exact network, the variants, and the architecture figure."""

import keras
import numpy as np
import pytest

from gliseg_nb import Config
from gliseg_nb.model import build_unet, conv_block, decoder_block, encoder_block, plot_unet, unet_levels

# Two input channels, as the arrays these tests feed (the quick preset reads four).
TINY = dict(image_size=32, depth=2, base_filters=4, modalities=("flair", "t1ce"))


def test_report_unet_has_exactly_the_reports_parameters():
    model = build_unet(Config.preset("report"))
    assert model.count_params() == 7_759_908
    assert model.input_shape == (None, 128, 128, 2)
    assert model.output_shape == (None, 128, 128, 4)


def test_report_unet_layers_match_the_report():
    model = build_unet(Config.preset("report"))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    three_by_three = [layer.filters for layer in convs if layer.kernel_size == (3, 3)]
    # Two 3x3 convolutions per level down, the bottleneck, then per level up.
    assert three_by_three == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512, 256, 256, 128, 128, 64, 64, 32, 32]
    up_convs = [layer.filters for layer in convs if layer.kernel_size == (2, 2)]
    assert up_convs == [256, 128, 64, 32]
    assert all(layer.padding == "same" for layer in convs if layer.kernel_size != (1, 1))
    assert all(isinstance(layer.kernel_initializer, keras.initializers.HeNormal) for layer in convs[:-1])
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [0.2]
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 4
    assert sum(isinstance(layer, keras.layers.UpSampling2D) for layer in model.layers) == 4
    # No variant is switched on by default.
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert not any(isinstance(layer, (keras.layers.Add, keras.layers.Multiply)) for layer in model.layers)


def test_output_is_a_float32_softmax_even_under_mixed_precision(rng):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_unet(Config.preset("quick", **TINY))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    output = model(rng.normal(size=(2, 32, 32, 2)).astype("float32"))
    assert output.dtype == "float32"
    np.testing.assert_allclose(np.sum(np.asarray(output), axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("variant", ["batch_norm", "residual", "attention"])
def test_variants_add_their_layers_and_keep_shapes(variant, rng):
    plain = build_unet(Config.preset("quick", **TINY))
    model = build_unet(Config.preset("quick", **TINY, **{variant: True}))
    layer_type = {"batch_norm": keras.layers.BatchNormalization, "residual": keras.layers.Add,
                  "attention": keras.layers.Multiply}[variant]
    assert sum(isinstance(layer, layer_type) for layer in model.layers) > 0
    assert model.count_params() != plain.count_params()
    output = model(rng.normal(size=(1, 32, 32, 2)).astype("float32"))
    assert output.shape == (1, 32, 32, 4)


def test_width_and_depth_follow_the_config():
    config = Config.preset("quick", image_size=64, depth=3, base_filters=8, modalities=("flair", "t1", "t1ce"))
    assert unet_levels(config) == ([8, 16, 32], 64)
    model = build_unet(config)
    assert model.input_shape == (None, 64, 64, 3)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 3


def test_blocks_are_usable_on_their_own():
    inputs = keras.Input((16, 16, 2))
    skip, down = encoder_block(inputs, 4, name="enc")
    assert tuple(skip.shape) == (None, 16, 16, 4) and tuple(down.shape) == (None, 8, 8, 4)
    up = decoder_block(conv_block(down, 8, name="mid"), skip, 4, attention=True, name="dec")
    assert tuple(up.shape) == (None, 16, 16, 4)


def test_bad_settings_raise_value_errors():
    with pytest.raises(ValueError, match="dropout"):
        build_unet(Config.preset("quick", **TINY, dropout=1.5))
    with pytest.raises(ValueError, match="Config"):
        build_unet({"depth": 2})


def test_plot_unet_draws_the_u_without_graphviz(tmp_path):
    import matplotlib.pyplot as plt

    figure = plot_unet(Config.preset("quick", **TINY), method="drawing", path=tmp_path / "unet.png")
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert "4 filters" in texts and "8 filters" in texts and "16 filters" in texts  # levels + bottleneck
    assert f"{build_unet(Config.preset('quick', **TINY)).count_params():,} parameters" in figure.axes[0].get_title()
    assert (tmp_path / "unet.png").stat().st_size > 0
    plt.close(figure)
    with pytest.raises(ValueError, match="method"):
        plot_unet(method="svg")
