"""Training: the step (the GAN maths), the loop (cadence, checkpoints, signals), the batch order, the
run's state across restarts, and the context that training-time hooks receive."""

from .context import TrainContext
from .loop import Trainer, TrainingDiverged, TrainResult, resume, train

__all__ = ["TrainContext", "TrainResult", "Trainer", "TrainingDiverged", "resume", "train"]
