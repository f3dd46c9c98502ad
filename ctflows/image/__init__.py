"""Flows on images: squeeze, logit preprocessing, uniform dequantization, convolutional CNF fields, Glow steps,
the multiscale architecture, ready-made multiscale CNF / Glow models and bits per dimension."""
from ctflows.image.bits import bits_per_dim, nats_to_bits_per_dim
from ctflows.image.dequantization import DequantizedImages, dequantize
from ctflows.image.fields import ConcatSquashConv2d, ConvTimeField
from ctflows.image.glow import ConvAffineCoupling, actnorm_2d, glow_step, invertible_conv_1x1
from ctflows.image.logit import Logit
from ctflows.image.models import multiscale_cnf, multiscale_glow
from ctflows.image.multiscale import Multiscale, level_shapes
from ctflows.image.squeeze import Squeeze, squeezed_shape
from ctflows.image.views import FlatView, ImageView, PerPixel

__all__ = [
    "Squeeze", "squeezed_shape", "Logit", "dequantize", "DequantizedImages", "ConcatSquashConv2d", "ConvTimeField",
    "ConvAffineCoupling", "actnorm_2d", "invertible_conv_1x1", "glow_step", "Multiscale", "level_shapes",
    "multiscale_cnf", "multiscale_glow", "ImageView", "FlatView", "PerPixel", "bits_per_dim", "nats_to_bits_per_dim",
]
