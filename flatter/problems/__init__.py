"""Built-in problems and the name registry used by the command line and sweeps."""

from collections.abc import Callable

from .._problem import Problem
from ._matrix_sensing import matrix_sensing as matrix_sensing
from ._teacher_student import teacher_student as teacher_student
from ._toy_valley import toy_valley as toy_valley

PROBLEMS: dict[str, Callable[..., Problem]] = {
    "toy-valley": toy_valley,
    "matrix-sensing": matrix_sensing,
    "teacher-student": teacher_student,
}


def make_problem(name: str, **kwargs) -> Problem:
    """Build a registered problem by name (``toy-valley``, ``matrix-sensing``, ``teacher-student``).

    Examples:
      >>> import flatter
      >>> flatter.problems.make_problem("toy-valley")
      Problem(name='toy-valley', n=1, observables=[loss, trace_hessian, x, y, abs_y, h])
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem name {name!r}; choose one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name](**kwargs)


__all__ = [
    "matrix_sensing",
    "teacher_student",
    "toy_valley",
]
