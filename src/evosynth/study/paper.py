"""The paper's own reported numbers (Parse-27k, Caffe and TensorRT on a Jetson TX1): quoted, never computed here.

Kept apart, with no imports, so that the charts and the pages quote the same values without loading each other.
"""

PAPER_GENERATIONS = 13
PAPER_SYNAPSE_REDUCTION = 10.0  # "a ten-fold decrease in synapses"
PAPER_FPS = (7.0, 37.0)  # inference speed of generation 1 and generation 13, frames per second
PAPER_SPEEDUP = PAPER_FPS[1] / PAPER_FPS[0]
PAPER_PRECISION_CHANGE_POINTS = 2.0  # "increase of ~2% in precision"
PAPER_RECALL_CHANGE_POINTS = -2.0  # "decrease ~2% in recall"
PAPER_TOLERANCE_POINTS = 2.0  # precision and recall "within about two points" of generation 1, either way
