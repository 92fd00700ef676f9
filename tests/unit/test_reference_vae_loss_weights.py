"""The reference VAE's reconstruction weights (tools/reference_vae.saturation_weights): saturated
object pixels count more than the grey ground, so the VAE cannot trade an object's colour for grey."""

import torch
from reference_vae import saturation_weights


def _pixels(rgb_values) -> torch.Tensor:
    """(1, 3, T=1, 1, N) in ComfyUI's [-1, 1] VAE input range from [0, 1] RGB triples."""
    rgb = torch.tensor(rgb_values, dtype=torch.float32).T  # (3, N)
    return (rgb * 2 - 1).view(1, 3, 1, 1, -1)


def test_saturated_objects_outweigh_the_grey_ground():
    ground, tinted_ground = (0.45, 0.45, 0.45), (0.50, 0.45, 0.42)  # generator: ground saturation < 0.2
    green_object, yellow_object = (0.12, 0.57, 0.15), (0.73, 0.66, 0.09)
    w = saturation_weights(_pixels([ground, tinted_ground, green_object, yellow_object]), object_weight=8.0).flatten()
    assert w.shape == (4,)
    assert w[0] == 1.0  # no saturation: the plain loss
    assert 1.0 < w[1] < 1 + 8.0 * 0.2**2  # the ground's slight tint barely counts
    assert w[2] > 5.0 and w[3] > 5.0  # objects count several times a ground pixel


def test_zero_object_weight_is_the_unweighted_loss():
    pixels = torch.rand(2, 3, 5, 4, 4) * 2 - 1
    assert torch.equal(saturation_weights(pixels, 0.0), torch.ones(2, 1, 5, 4, 4))
