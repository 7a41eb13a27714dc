"""flatter's public names, re-exported explicitly (``flatter/__init__.py`` loads this module on first use)."""

from . import (
    curvature as curvature,
    data as data,
    limit as limit,
    models as models,
    problems as problems,
    sweep as sweep,
    timescales as timescales,
    valley as valley,
)
from ._compare import Comparison as Comparison, compare as compare, plot_comparison as plot_comparison
from ._criteria import (
    PassageTime as PassageTime,
    first_passage as first_passage,
    settling_time as settling_time,
)
from ._heavy_ball import heavy_ball as heavy_ball
from ._interpolate import (
    InterpolationError as InterpolationError,
    InterpolationInfo as InterpolationInfo,
    interpolate as interpolate,
)
from ._label_flip import (
    LabelFlipConfig as LabelFlipConfig,
    LabelFlipState as LabelFlipState,
    draw_label_flip as draw_label_flip,
    label_flip as label_flip,
)
from ._label_noise import (
    LabelNoiseConfig as LabelNoiseConfig,
    LabelNoiseState as LabelNoiseState,
    draw_label_noise as draw_label_noise,
    label_noise as label_noise,
    label_perturbation as label_perturbation,
    leading_label_noise as leading_label_noise,
)
from ._momentum_rule import (
    ScaledHeavyBallState as ScaledHeavyBallState,
    momentum_rule as momentum_rule,
    scaled_heavy_ball as scaled_heavy_ball,
)
from ._problem import Problem as Problem
from ._simulate import Trajectory as Trajectory, make_step as make_step, simulate as simulate
from ._sngm import SNGMState as SNGMState, sngm as sngm
