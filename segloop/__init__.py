"""segloop: the torch-free base of the segmentation data flywheel.

Holds the params schema, class taxonomies, dataset-independent metrics and the CLI root.
It imports none of the stage packages (``training``, ``export``, ``inference_server``); the
CLI root loads a stage's commands only when that command runs.
"""

__version__ = "0.1.0"
