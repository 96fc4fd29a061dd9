"""Model extrapolation (ExPO): push an aligned model further along its alignment direction."""

from weak2strong.extrapolate.merge import extrapolate
from weak2strong.extrapolate.planning import plan_extrapolation

__all__ = ["extrapolate", "plan_extrapolation"]
