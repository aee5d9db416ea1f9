"""The embedded procedural driving-scene dataset.

``render_frame`` draws one street scene (perspective road, sidewalks, facades, vehicles, people,
street furniture) with its Cityscapes trainId label map, then applies a lighting/weather
condition. ``write_dataset`` writes many frames in the Cityscapes folder layout;
``write_clips`` writes short driving clips for video labeling.
"""

from segloop.synth.clips import write_clips
from segloop.synth.scene import Frame, render_frame
from segloop.synth.writer import write_dataset

__all__ = ["Frame", "render_frame", "write_clips", "write_dataset"]
