"""python -m jaxtl.models --list | --stages ARCH[,ARCH...]

`--list` prints the registered architecture names, one per line; `--stages` prints the
fine-tuning stages of each named architecture, from the input up (`finetune.*` acts on them).
"""

from __future__ import annotations

from absl import flags

from jaxtl.commands import cli
from jaxtl.core.errors import ConfigError, UserError
from jaxtl.models import list_models, stages_of


def define_flags() -> cli.Options:
    return {
        "list": flags.DEFINE_bool("list", False, "Print one architecture name per line."),
        "stages": flags.DEFINE_list("stages", [], "Print the fine-tuning stages of these "
                                    "architectures."),
    }


def check(argv: list[str], options: cli.Options) -> str:
    """--check: something to do, and every --stages name a registered architecture."""
    del argv
    if not options["list"].value and not options["stages"].value:
        raise UserError("nothing to do; pass --list or --stages ARCH")
    for name in options["stages"].value:
        if name not in list_models():
            raise ConfigError(f"unknown architecture {name!r}; python -m jaxtl.models --list "
                              f"names them")
    return "the command line parses"


def main(argv: list[str], options: cli.Options) -> None:
    check(argv, options)
    if options["list"].value:
        print("\n".join(list_models()))
    for name in options["stages"].value:
        print(name + ": " + ", ".join(stage.name for stage in stages_of(name)))


if __name__ == "__main__":
    cli.run(main, define_flags, check=check)
