"""Data: the task registry, embedded datasets and user files behind one loader."""

from weak2strong.data.base import Example, TaskData
from weak2strong.data.tasks import TASKS, TaskConfig, TaskSpec, load_task

__all__ = ["TASKS", "Example", "TaskConfig", "TaskData", "TaskSpec", "load_task"]
