"""Data: the task registry, embedded datasets and user files behind one loader."""

from weak2strong.data.base import Example, TaskData, split_halves
from weak2strong.data.tasks import TASKS, TaskConfig, TaskSpec, load_task

__all__ = ["TASKS", "Example", "TaskConfig", "TaskData", "TaskSpec", "load_task", "split_halves"]
