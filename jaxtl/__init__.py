"""jaxtl: transfer learning for medical and remote-sensing images in JAX/Flax."""

__version__ = "0.1.0"
