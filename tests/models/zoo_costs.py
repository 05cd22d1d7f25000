"""What running an architecture costs on CI, and the member of each family that the tests run.

The zoo tests (test_zoo.py) and the end-to-end training by config (test_config_selection.py)
run the cheapest member of each family (`cheapest_member`): the deeper or wider members repeat
the same code. Two numbers, read from the traced `init` (no compilation), tell what a model
costs on the shared 2-core CI machine (kept in zoo_costs.json, as tracing all architectures takes
half a minute in every test process that collects them; test_zoo.py checks the table against the
traced models and `python tests/models/zoo_costs.py` writes it anew):
  * its program's length (`Cost.equations`): compiling a backward pass takes time in proportion;
  * its parameters (`Cost.parameters`): initialising, optimising and checkpointing them.
The table also marks the members whose bfloat16 and grey-image traces test_zoo.py checks
(`dtype_checked`): in each family, in order of cost, every member with a kind of variable
(`variable_kinds`) that no cheaper marked member has; the others repeat the marked members'
layers at other depths and widths.
Measured there, CPU seconds for two demo training steps (test_config_selection.py's tiny demo
run, one architecture per process at XLA's default compile effort, about 6 s of it imports and
demo data), with the cost (parameters with
timm's 1000-class head, equations): small_cnn 7 (0.6 M, 212), resnet18 15 (11.7 M, 823),
tf_efficientnet_b0 31 (5.3 M, 2,727), resnetv2_50x1_bit 33 (25.5 M, 3,124), nf_resnet50 35
(25.6 M, 2,424), inception_v3 46 (23.8 M, 3,649); densenet121 58 (8.0 M, 4,807: every layer
reads all earlier ones; compiling its backward pass alone takes 30-50 s), vgg16 65 (138 M, 468).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import re
import sys
from collections.abc import Callable

import jax

# zoo_helpers (and tests/random_weights.py, which it imports), when run as a script
sys.path[:0] = [str(pathlib.Path(__file__).parent), str(pathlib.Path(__file__).parents[1])]
from zoo_helpers import shapes_by_name, traced_init

from jaxtl.models import families, list_models

COST_TABLE = pathlib.Path(__file__).with_name("zoo_costs.json")

MAX_EQUATIONS_TO_COMPILE = 4_000  # backward passes compiled in the tests: inception_v3 yes, densenet121 no
MAX_PARAMETERS_TO_TRAIN = 50_000_000  # trained end to end by config: ResNet-50-sized yes, vgg16 no
# Trained end to end by config: the tiny ViT and ConvNeXt yes, efficientnet, nfnet, resnetv2 (BiT)
# and inception no (their train steps cost 30-60 s of CPU each on CI). The loop is the same for
# every family; what differs is the variables and random streams it carries, and the runs of
# the tests cover every kind: batch statistics (small_cnn, resnet18), a dropout stream and no
# batch statistics (the ViT and ConvNeXt, with stochastic depth in
# tests/training/test_converted_families.py). test_zoo.py runs the others' training-mode
# forward and backward passes (dropout and drop-connect included).
MAX_EQUATIONS_TO_TRAIN = 2_000


@dataclasses.dataclass(frozen=True)
class Cost:
    parameters: int
    equations: int  # in the model's traced `init`, nested jaxprs included


def _equations(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _equations(inner)
    return count


def variable_kinds(arch: str) -> frozenset[tuple[str, object]]:
    """`arch`'s variables with every number in their names replaced by '#' (a deeper member
    repeats its blocks: the same kinds), with a kernel's spatial shape or a variable's rank."""
    return frozenset((re.sub(r"\d+", "#", name), shape[:-2] if len(shape) == 4 else len(shape))
                     for name, shape in shapes_by_name(traced_init(arch).variables).items())


def members_by_cost(family: str, cost_of: Callable[[str], Cost] | None = None) -> list[str]:
    """`family`'s members, cheapest first (of equal cost, the one registered last first), by
    `cost_of` (default: the table's `cost`)."""
    cost_of = cost_of or cost
    members = families()[family]
    return sorted(members, key=lambda arch: (*dataclasses.astuple(cost_of(arch)),
                                             -members.index(arch)))


def traced_dtype_checked(family: str, cost_of: Callable[[str], Cost] | None = None) -> list[str]:
    """The members of `family` that bring a kind of variable no cheaper one has, from their
    traces (cheaper: by `cost_of`, default the table's)."""
    chosen, covered = [], frozenset()
    for arch in members_by_cost(family, cost_of):
        if not variable_kinds(arch) <= covered:
            chosen.append(arch)
            covered |= variable_kinds(arch)
    return chosen


def traced_cost(arch: str) -> Cost:
    """`arch`'s cost, from its traced `init`."""
    traced = traced_init(arch)
    return Cost(sum(leaf.size for leaf in jax.tree.leaves(traced.variables["params"])),
                _equations(traced.jaxpr))


DTYPE_CHECKED = "dtype_checked"  # the table's column marking `traced_dtype_checked` members


@functools.cache
def _rows() -> dict[str, dict]:
    return json.loads(COST_TABLE.read_text()) if COST_TABLE.exists() else {}


def _row(arch: str) -> dict:
    if arch not in _rows():
        raise KeyError(f"{arch} has no row in {COST_TABLE}: run python {__file__}")
    return _rows()[arch]


def cost(arch: str) -> Cost:
    """`arch`'s cost, as zoo_costs.json records it."""
    row = _row(arch)
    return Cost(**{field.name: row[field.name] for field in dataclasses.fields(Cost)})


def dtype_checked(arch: str) -> bool:
    """Whether zoo_costs.json marks `arch` as one whose dtype traces test_zoo.py checks."""
    return _row(arch)[DTYPE_CHECKED]


def cheapest_member(family: str) -> str:
    """The member of `family` with the fewest parameters, then the shortest program; of equally
    cheap members the one registered last (tf_efficientnet_b0 over efficientnet_b0: they differ
    in padding only, and the TF flavour's 'SAME' padding is what the family's own tests run
    least)."""
    return members_by_cost(family)[0]


def too_costly_to_compile(arch: str) -> str | None:
    """Why compiling `arch`'s backward pass is too slow for CI; None if it is not."""
    equations = cost(arch).equations
    if equations > MAX_EQUATIONS_TO_COMPILE:
        return (f"{arch}: a program of {equations} equations (> {MAX_EQUATIONS_TO_COMPILE}) "
                f"compiles its backward pass too slowly for CI; its family's tests must run that "
                f"code in a smaller model")
    return None


def too_costly_to_train(arch: str) -> str | None:
    """Why training `arch` end to end is too slow for CI; None if it is not."""
    parameters = cost(arch).parameters
    if parameters > MAX_PARAMETERS_TO_TRAIN:
        return (f"{arch}: {parameters / 1e6:.0f} M parameters (> "
                f"{MAX_PARAMETERS_TO_TRAIN / 1e6:.0f} M) take too long to initialise and "
                f"checkpoint on CI; test_zoo.py runs its forward and backward pass")
    equations = cost(arch).equations
    if equations > MAX_EQUATIONS_TO_TRAIN:
        return (f"{arch}: a program of {equations} equations (> {MAX_EQUATIONS_TO_TRAIN}) "
                f"compiles a train step too slowly for CI, and the families trained carry every "
                f"kind of variables and random streams the loop handles; test_zoo.py or its "
                f"family's tests run its forward and backward pass")
    return None


if __name__ == "__main__":
    costs = {arch: traced_cost(arch) for arch in list_models()}
    checked = {arch for family in families()
               for arch in traced_dtype_checked(family, costs.__getitem__)}
    rows = [f"{json.dumps(arch)}: "
            f"{json.dumps({**dataclasses.asdict(costs[arch]), DTYPE_CHECKED: arch in checked})}"
            for arch in list_models()]
    COST_TABLE.write_text("{\n" + ",\n".join(rows) + "\n}\n")
    print(f"wrote {COST_TABLE}")
