"""The optimizer transforms, all optax ``GradientTransformation``s: heavy ball, the momentum rule, SNGM,
label noise (squared loss) and label flips (classification); for large-batch studies, LARS with the usual
masks and the warm-up + cosine schedule of a fixed epoch budget. Each transform is also at the top level
(``flatter.heavy_ball``)."""

from ._heavy_ball import heavy_ball as heavy_ball
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
    label_noise_batch as label_noise_batch,
    label_perturbation as label_perturbation,
    leading_label_noise as leading_label_noise,
)
from ._large_batch_schedule import (
    LargeBatchSchedule as LargeBatchSchedule,
    large_batch_schedule as large_batch_schedule,
)
from ._lars import lars_masked as lars_masked, matrices_only as matrices_only
from ._momentum_rule import (
    ScaledHeavyBallState as ScaledHeavyBallState,
    momentum_rule as momentum_rule,
    scaled_heavy_ball as scaled_heavy_ball,
)
from ._sngm import SNGMState as SNGMState, sngm as sngm

__all__ = [
    "heavy_ball",
    "LabelFlipConfig",
    "LabelFlipState",
    "draw_label_flip",
    "label_flip",
    "LabelNoiseConfig",
    "LabelNoiseState",
    "draw_label_noise",
    "label_noise",
    "label_noise_batch",
    "label_perturbation",
    "leading_label_noise",
    "LargeBatchSchedule",
    "large_batch_schedule",
    "lars_masked",
    "matrices_only",
    "ScaledHeavyBallState",
    "momentum_rule",
    "scaled_heavy_ball",
    "SNGMState",
    "sngm",
]
