"""What a task plugin's builder returns (docs/plugins.md): ``Task``, the tensors of both splits
and a freshly initialised model, and ``mlp``, the service's multilayer perceptron."""

from worker.training.models import mlp
from worker.training.task import Task

__all__ = ["Task", "mlp"]
