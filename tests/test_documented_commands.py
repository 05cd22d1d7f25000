"""Every jaxtl command that README.md and docs/ show in a code block runs as written.

Each `python -m jaxtl...` command (continuation lines joined; also inside `sbatch --wrap "..."`
or `ssh --command="..."`) runs with `--check` (jaxtl.commands.cli: flags parsed, config loaded
with its overrides and validated, the program's own early checks; no data read, nothing
compiled) and must exit 0. `--check` reads no data and no run folder, so the pages may name
folders that earlier commands write (runs/eyepacs-demo, RUN_A). The weight converters take
`--check` too, except where the converter needs torch and timm, which jaxtl does not install
(`make_golden`, `make_library_golden`): there every flag the command passes must be one the module defines. The
benchmark scripts (`python benchmarks/NAME.py`) are parsed with `--help`,
and every flag a documented benchmark command passes must be one its help lists.
"""

from __future__ import annotations

import pathlib
import re
import shlex

import pytest
from programs import REPO, ProgramRun, run_programs

PAGES = (REPO / "README.md", REPO / "benchmarks" / "README.md",
         *sorted((REPO / "docs").rglob("*.md")))
GENERATED = (REPO / "docs" / "_build", REPO / "docs" / "_autosummary", REPO / "docs" / "_generated")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w-]*)")
SHELL = {"", "bash", "sh", "shell", "console"}  # other blocks (text, python) hold no commands
PROGRAM = re.compile(r"python -m (jaxtl[\w.]*)")
BENCHMARK = re.compile(r"python (benchmarks/\w+\.py)")
ENDS = {"&&", "||", ";", "|", ">", "2>", ">>", "&", "done"}
LOOP = re.compile(r"for (\w+) in ([^;]+);")
CHECKOUT = {"PYTHONPATH": str(REPO)}  # this checkout's jaxtl and benchmarks/, for each program


def code_blocks(text: str) -> list[str]:
    """The shell code blocks of a markdown text."""
    blocks, lines, fence, language = [], [], None, ""
    for line in text.splitlines():
        marker = FENCE.match(line.strip())
        if fence is None and marker:
            fence, language, lines = marker.group(1), marker.group(2), []
        elif fence is not None and line.strip() == fence:
            if language in SHELL:
                blocks.append("\n".join(lines))
            fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def joined_lines(block: str) -> list[str]:
    """The block's lines with backslash continuations joined."""
    out, current = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
        else:
            out.append(current + line)
            current = ""
    if current:
        out.append(current)
    return out


def command_words(line: str, start: int) -> list[str]:
    """The words of the command that starts at `start`: up to the end of the quoted string it
    sits in (`--wrap "srun python -m ..."`), a shell operator or a comment."""
    before, rest = line[:start], line[start:]
    for quote in "\"'":
        if before.count(quote) % 2 == 1 and quote in rest:  # --wrap "srun python -m ..."
            rest = rest[:rest.index(quote)]
        elif rest.count(quote) % 2 == 1:  # the quote opened on an earlier line
            rest = rest[:rest.rindex(quote)]
    lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)  # `0; done` -> 0 ; done
    lexer.whitespace_split = True
    words = list(lexer)
    for index, word in enumerate(words):
        if word in ENDS:
            return words[:index]
    return words


def loop_values(line: str) -> list[tuple[str, str]]:
    """`for w in 0 1 2; do ... $w ...; done`: [("$w", "0"), ...]; [("", "")] without a loop."""
    loop = LOOP.search(line)
    if loop is None:
        return [("", "")]
    return [("$" + loop.group(1), value) for value in loop.group(2).split()]


def documented(pattern: re.Pattern) -> list[tuple[str, list[str]]]:
    """(page, words) of every command matching `pattern` in a shell block of the pages."""
    found = []
    for page in PAGES:
        if any(folder in page.parents for folder in GENERATED):
            continue
        for block in code_blocks(page.read_text()):
            for line in joined_lines(block):
                for match in pattern.finditer(line):
                    words = command_words(line, match.start())
                    for variable, value in loop_values(line):
                        found.append((str(page.relative_to(REPO)),
                                      [word.replace(variable, value) if variable else word
                                       for word in words]))
    return found


def test_commands_are_found_in_the_pages():
    programs = {words[2] for _, words in documented(PROGRAM)}
    assert {"jaxtl.main", "jaxtl.sweep", "jaxtl.report", "jaxtl.explain",
            "jaxtl.commands.compare", "jaxtl.commands.evaluate", "jaxtl.commands.settings",
            "jaxtl.convert_weights.timm"} <= programs, programs
    readme = [words for page, words in documented(PROGRAM) if page == "README.md"]
    assert ["python", "-m", "jaxtl.main", "--config", "configs/eyepacs.py", "--workdir",
            "runs/eyepacs-demo"] in readme


def test_no_placeholder_is_left_in_a_command():
    bad = [(page, " ".join(words)) for page, words in documented(PROGRAM) + documented(BENCHMARK)
           if any("..." in word or word.startswith("[") for word in words)]
    assert not bad, "write a pasteable value instead of ... or [optional]:\n" + "\n".join(
        f"{page}: {command}" for page, command in bad)


def uses_cli(script: pathlib.Path) -> bool:
    """A benchmark script shaped as a jaxtl program (cli.run), which takes --check."""
    return "cli.run(" in script.read_text()


NEEDS_TORCH = ("No module named 'timm'", "No module named 'torch'",
               "No module named 'open_clip'", "No module named 'transformers'")


def defined_flags(module: str) -> set[str]:
    """The absl (or argparse) flags a module defines, read from its source."""
    source = (REPO / "tools" / "convert_weights" / (module.split(".")[-1] + ".py")).read_text()
    return set(re.findall(r"DEFINE_\w+\(\s*\"([\w-]+)\"", source)) | set(
        re.findall(r"add_argument\(\s*\"--([\w-]+)\"", source))


def passes(words: list[str], run) -> bool:
    if run.returncode == 0 and run.stdout.startswith("ok: "):
        return True
    if words[2].startswith("jaxtl.convert_weights.") and any(
            missing in run.stderr for missing in NEEDS_TORCH):
        flags = {word[2:].split("=")[0] for word in words[3:] if word.startswith("--")}
        return bool(flags) and flags <= defined_flags(words[2])
    return False


def test_every_documented_program_command_passes_its_check():
    commands = documented(PROGRAM)
    scripts = [(page, words) for page, words in documented(BENCHMARK)
               if uses_cli(REPO / words[1])]
    runs = run_programs([(words[2], [*words[3:], "--check"], CHECKOUT) for _, words in commands]
                        + [(words[1].removesuffix(".py").replace("/", "."),
                            [*words[2:], "--check"], CHECKOUT) for _, words in scripts])
    commands += scripts
    failed = [f"{page}: {run.command}\n  exit {run.returncode}: "
              f"{(run.stderr.strip() or run.stdout.strip())[-600:]}"
              for (page, words), run in zip(commands, runs) if not passes(words, run)]
    assert not failed, "\n".join(failed)


@pytest.fixture(scope="module")
def benchmark_help() -> dict[str, ProgramRun]:
    """`python benchmarks/NAME.py --help` of every documented benchmark script that is no
    jaxtl program (those run with --check above), by script, run together."""
    scripts = sorted({words[1] for _, words in documented(BENCHMARK)
                      if (REPO / words[1]).is_file() and not uses_cli(REPO / words[1])})
    runs = run_programs([(str(REPO / script), ["--help"]) for script in scripts], timeout=300)
    return dict(zip(scripts, runs, strict=True))


@pytest.mark.parametrize("page,words", documented(BENCHMARK),
                         ids=lambda value: value if isinstance(value, str) else "")
def test_documented_benchmark_commands_parse(page, words, benchmark_help):
    script = REPO / words[1]
    assert script.is_file(), f"{page}: {words[1]} does not exist"
    if uses_cli(script):
        return  # run with --check with the programs
    result = benchmark_help[words[1]]
    assert result.returncode == 0, f"{page}: {' '.join(words)} --help\n{result.stderr[-2000:]}"
    unknown = [word.split("=")[0] for word in words[2:]
               if word.startswith("--") and word.split("=")[0] not in result.stdout]
    assert not unknown, f"{page}: {' '.join(words)}: {unknown} not in --help"


def test_check_refuses_what_the_program_would_refuse(tmp_path):
    """--check is no rubber stamp: each of these stops with one line and exit code 2, and a
    passing check writes nothing (the workdir is not created)."""
    workdir = tmp_path / "run"
    bad = [
        ("jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(workdir),
                        "--config.optim.name=sgdd"], "optim.name"),
        ("jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(workdir),
                        "--config.model.arch=resnet50"], "demo"),
        ("jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(workdir),
                        "--num_processes=2"], "--coordinator_address"),
        ("jaxtl.main", ["--config", "configs/eyepacs.py"], "workdir"),
        ("jaxtl.commands.compare", [str(tmp_path)], "two run folders"),
        ("jaxtl.commands.verify", ["--config", "configs/chexpert.py", "--splits", "train,tst"],
         "tst"),
        ("jaxtl.models", ["--stages", "resnet5"], "resnet5"),
        ("jaxtl.report", [], "sweep"),
        ("jaxtl.sweep", ["--config", "configs/sweeps/missing.py", "--workdir",
                         str(workdir)], "missing.py"),
    ]
    good = ("jaxtl.main", ["--config", "configs/eyepacs.py", "--workdir", str(workdir)])
    commands = [(module, argv) for module, argv, _ in bad] + [good]
    runs = run_programs([(module, [*argv, "--check"], CHECKOUT) for module, argv in commands],
                        timeout=300)
    for (module, argv, expected), run in zip(bad, runs):
        assert run.returncode == 2, (module, argv, run.stdout, run.stderr)
        assert expected in run.stderr and not run.traceback, (module, argv, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert runs[-1].returncode == 0 and runs[-1].stdout.startswith("ok: "), runs[-1].stderr
    assert "demo data" in runs[-1].stdout
    assert not workdir.exists()
