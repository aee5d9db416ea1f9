"""Semi-supervised method components: each module implements one paper's equations as small,
separately tested functions and classes, switched on and tuned from ``params.yaml``."""
