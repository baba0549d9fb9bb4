"""Write a report of one or several run folders: report.md, PNG figures, results_long.csv.

The report is a list of sections (functions, see `context`), so a new table is one function
appended to `OVERVIEW_SECTIONS` or `RUN_SECTIONS`. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from matplotlib.figure import Figure
from torch import nn

from tinysubnets.atomic import write_text
from tinysubnets.errors import DataError
from tinysubnets.report import figures, measured, overview, pertask
from tinysubnets.report.context import Context, OverviewSection, RunSection, SectionOut
from tinysubnets.report.longcsv import LONG_CSV, long_csv, long_rows
from tinysubnets.report.markdown import notes, section
from tinysubnets.report.rundir import RunData, read_runs

REPORT = "report.md"
FIGURES = "figures"
T = TypeVar("T")

# Tables with one row per run, shown once at the top (side by side when there are several).
OVERVIEW_SECTIONS: list[OverviewSection] = [
    overview.notes_section,
    overview.runs_section,
    overview.transfer_section,  # Table 8
    overview.capacity_section,  # Table 1
    overview.post_pruning_section,  # Table 5 (several runs only)
    overview.time_section,  # Table 4, totals
]
# One run in detail, one row per task (under a heading per run when there are several).
RUN_SECTIONS: list[RunSection] = [
    pertask.accuracy_matrix_section,  # Figures 2-5
    pertask.over_tasks_section,  # ACC, first/last ten, capacity against the number of tasks
    pertask.compression_section,  # Table 2
    pertask.bitwidth_accuracy_section,  # Table 3
    pertask.capacity_per_task_section,  # Table 1, per task
    pertask.time_per_task_section,  # Table 4, per task
    measured.flops_section,  # Table 6, from model.tsn
    measured.activations_section,  # Table 7, from model.tsn and the scenario's data
    measured.task_inference_section,  # without task ids, from model.tsn and the data
]


@dataclass
class Report:
    """What `write_report` wrote, and what it could not show."""

    path: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # per run: what its folder lacks


def default_out(run_dirs: Sequence[Path]) -> Path:
    """The single run's own folder, or ./report for several."""
    return Path(run_dirs[0]) if len(run_dirs) == 1 else Path("report")


def _draw(ctx: Context, out: Path, report: Report) -> None:
    """Every figure of every run, then the comparison figures; links relative to report.md."""
    for run in ctx.runs:
        folder = out / FIGURES / (run.slug if ctx.several else "")
        for name, draw in figures.RUN_FIGURES.items():
            fig = _guard(report, f"{run.label}: figure {name}", lambda d=draw, r=run: d(r))
            if fig is not None:
                _save_figure(fig, folder / name, out, ctx, (run.label, name), report)
        rows = measured.task_inference(ctx, run) if ctx.activations else None
        if isinstance(rows, list):  # measured (else the section says why not)
            fig = figures.inferred_tasks([r.inferred for r in rows], run.label,
                                         measured.inference_criterion(ctx, run))
            name = measured.INFERENCE_FIGURE
            _save_figure(fig, folder / name, out, ctx, (run.label, name), report)
    if ctx.several:
        for name, draw in figures.COMPARE_FIGURES.items():
            fig = _guard(report, f"figure {name}", lambda d=draw: d(ctx.runs))
            if fig is not None:
                _save_figure(fig, out / FIGURES / name, out, ctx, ("", name), report)


def _save_figure(fig: Figure, path: Path, out: Path, ctx: Context, key: tuple[str, str],
                 report: Report) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figures.save(fig, path)
    ctx.links[key] = path.relative_to(out).as_posix()
    report.files.append(path)


def _guard(report: Report, what: str, make: Callable[[], T]) -> T | None:
    """Run one section or figure; a results.json without a field it needs (an older or edited
    run) leaves that part out with a note instead of ending the report in a traceback."""
    try:
        return make()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        report.notes.append(f"{what} left out: the results lack or garble {e!s}")
        return None


def _render(title_level: int, out: SectionOut) -> str | None:
    if out is None:
        return None
    title, blocks = out
    return section(title, *blocks, level=title_level)


def markdown(ctx: Context, report: Report) -> str:
    """report.md: the overview sections, then each run in detail."""
    labels = ", ".join(f"`{r.label}`" for r in ctx.runs)
    title = f"# TinySubNets report: {labels}" if not ctx.several else (
        f"# TinySubNets report: {len(ctx.runs)} runs ({labels})")
    parts: list[str | None] = [title]
    for make in OVERVIEW_SECTIONS:
        parts.append(_render(2, _guard(report, make.__name__, lambda m=make: m(ctx))))
    for run in ctx.runs:
        level = 3 if ctx.several else 2
        if ctx.several:
            parts.append(f"## Run `{run.label}` ({run.path})")
        for make in RUN_SECTIONS:
            what = f"{run.label}: {make.__name__}"
            parts.append(_render(level, _guard(report, what, lambda m=make, r=run: m(ctx, r))))
    if report.notes:
        parts.append(section("Left out", notes(report.notes)))
    return "\n\n".join(p for p in parts if p) + "\n"


def write_report(
    run_dirs: Sequence[Path], out: Path | None = None, data_dir: str | Path | None = None,
    activations: bool = True, backbone: nn.Module | None = None,
) -> Report:
    """Read the run folders (a `DataError` names one that is not a run) and write the report.

    ``out`` defaults to the run folder for one run, ``./report`` for several. ``data_dir``
    (default: the one each run's config records) is where Table 7 finds the data;
    ``activations=False`` skips Table 7. ``backbone``: a fresh instance of the user's module,
    for runs trained with one (Tables 6 and 7 load the model file).
    """
    if not run_dirs:
        raise ValueError("write_report needs at least one run folder")
    runs: list[RunData] = read_runs([Path(p) for p in run_dirs])
    out = Path(out) if out is not None else default_out(run_dirs)
    if out.exists() and not out.is_dir():
        raise DataError(f"cannot write the report: {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / REPORT)
    ctx = Context(runs, data_dir=None if data_dir is None else str(data_dir),
                  activations=activations, backbone=backbone)
    _draw(ctx, out, report)
    rows = [row for run in runs for row in long_rows(run.results, run.label)]
    write_text(out / LONG_CSV, long_csv(rows))
    report.files.append(out / LONG_CSV)
    text = markdown(ctx, report)
    write_text(report.path, text)
    report.files.insert(0, report.path)
    report.notes = [f"{r.label}: {n}" for r in runs for n in r.notes] + report.notes
    return report
