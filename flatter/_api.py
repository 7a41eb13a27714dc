"""flatter's public names, re-exported explicitly (``flatter/__init__.py`` loads this module on first use)."""

from . import (
    curvature as curvature,
    data as data,
    figures as figures,
    limit as limit,
    models as models,
    problems as problems,
    sweep as sweep,
    timescales as timescales,
    transforms as transforms,
    valley as valley,
)
from ._compare import (
    Comparison as Comparison,
    DiscrepancyOrder as DiscrepancyOrder,
    compare as compare,
    compare_step_sizes as compare_step_sizes,
    discrepancy_order as discrepancy_order,
    plot_comparison as plot_comparison,
)
from ._criteria import (
    PassageTime as PassageTime,
    first_passage as first_passage,
    plateau_time as plateau_time,
    settling_time as settling_time,
)
from ._full_batch import (
    FitInfo as FitInfo,
    fit_training_set as fit_training_set,
    full_batch_gradient as full_batch_gradient,
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from ._interpolate import (
    InterpolationError as InterpolationError,
    InterpolationInfo as InterpolationInfo,
    interpolate as interpolate,
)
from ._problem import Problem as Problem
from ._simulate import (
    SAMPLINGS as SAMPLINGS,
    Trajectory as Trajectory,
    draw_batch as draw_batch,
    loops_are_slow as loops_are_slow,
    make_step as make_step,
    simulate as simulate,
)
from .transforms import (
    LabelFlipConfig as LabelFlipConfig,
    LabelFlipState as LabelFlipState,
    LabelNoiseConfig as LabelNoiseConfig,
    LabelNoiseState as LabelNoiseState,
    ScaledHeavyBallState as ScaledHeavyBallState,
    SNGMState as SNGMState,
    draw_label_flip as draw_label_flip,
    draw_label_noise as draw_label_noise,
    heavy_ball as heavy_ball,
    label_flip as label_flip,
    label_noise as label_noise,
    label_perturbation as label_perturbation,
    leading_label_noise as leading_label_noise,
    momentum_rule as momentum_rule,
    scaled_heavy_ball as scaled_heavy_ball,
    sngm as sngm,
)
