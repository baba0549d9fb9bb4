"""Overview tables, one row (or column) per run: the same code for one run and for several.

Several runs side by side is how ablations read (post-pruning on/off, KL on/off): every table
here lists the runs in the order given, labelled by folder name. Table numbers are those of
the paper's supplement.
"""

from __future__ import annotations

from typing import Any

from tinysubnets.report.context import Context, SectionOut
from tinysubnets.report.figures import PHASES, parts_of
from tinysubnets.report.markdown import MISSING, figure, notes, num, table
from tinysubnets.report.rundir import RunData


def _on(flag: Any) -> str:
    return "on" if flag else "off"


def highlights(config: dict[str, Any]) -> dict[str, str]:
    """The settings a reader compares first, in words (missing keys read "n/a")."""
    train, prune = config.get("train") or {}, config.get("prune") or {}
    quantize, similarity = config.get("quantize") or {}, config.get("similarity") or {}
    layers = ", ".join(f"{k} {v}" for k, v in (train.get("layer_keep_ratio") or {}).items())
    out = {
        "epochs per task": num(train.get("epochs")),
        "batch, optimizer, lr, schedule": f"{train.get('batch_size', MISSING)}, "
        f"{train.get('optimizer', MISSING)}, {train.get('lr', MISSING)}, "
        f"{train.get('schedule', MISSING)}",
        "keep ratio": f"{train.get('keep_ratio', MISSING)}" + (f" ({layers})" if layers else ""),
        "claim rule": str(train.get("claim", MISSING)),
        "post-pruning": _on(prune.get("enabled")),
        "quantization": _on(quantize.get("enabled")),
        "similarity (KL)": f"share from nearest {_on(similarity.get('share_from_nearest'))}, "
        f"adapt capacity {_on(similarity.get('adapt_capacity'))}",
        "threads": num(config.get("threads") or "default"),
    }
    if prune.get("enabled"):
        out["post-pruning"] += (f" (threshold {prune.get('threshold')} points, "
                                f"{prune.get('retrain_epochs')} retraining epochs)")
    if quantize.get("enabled"):
        out["quantization"] += (
            f" ({quantize.get('b_min')}-{quantize.get('b_max')} bits, threshold "
            f"{quantize.get('threshold')} points, heads {_on(quantize.get('heads'))}, "
            f"{quantize.get('finetune_epochs')} fine-tuning epochs)"
        )
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def notes_section(ctx: Context) -> SectionOut:
    """What the run folders lack, first: the rest of the report shows what they have."""
    items = [f"`{r.label}`: {n}" if ctx.several else n for r in ctx.runs for n in r.notes]
    return ("Notes", [notes(items)]) if items else None


def runs_section(ctx: Context) -> SectionOut:
    """Scenario, tasks, seed and data of each run; settings side by side; what differs."""
    rows = [
        [f"`{r.label}`", r.config.get("scenario"), f"{len(r.R)} / {r.config.get('tasks', '?')}",
         r.config.get("seed"), r.results.get("data"), num(r.results.get("time_total_s"), 1)]
        for r in ctx.runs
    ]
    runs = table(["run", "scenario", "tasks finished / planned", "seed", "data", "time (s)"], rows)
    settings = [highlights(r.config) for r in ctx.runs]
    side = table(["setting", *[f"`{r.label}`" for r in ctx.runs]],
                 [[k, *[s[k] for s in settings]] for k in settings[0]])
    blocks: list[str | None] = [runs, "Settings:", side]
    if ctx.several:
        flat = [_flatten(r.config) for r in ctx.runs]
        keys = sorted({k for f in flat for k in f})
        differ = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
        blocks.append("Settings that differ between the runs: " + (", ".join(
            f"`{k}`" for k in differ) if differ else "none (same configuration; seeds included)."))
    return "Runs", blocks


def transfer_section(ctx: Context) -> SectionOut:
    """Table 8: ACC, BWT, FWT (FWT against the random-init baseline, as in GEM)."""
    rows = [[f"`{r.label}`", r.config.get("scenario"), len(r.R), num(r.results.get("acc")),
             num(r.results.get("bwt"), signed=True), num(r.results.get("fwt"), signed=True)]
            for r in ctx.runs]
    return "ACC, BWT, FWT (Table 8)", [
        table(["run", "scenario", "tasks", "ACC (%)", "BWT", "FWT"], rows),
        "ACC: mean final accuracy; BWT: mean of R[T-1][j] - R[j][j]; FWT: mean of R[j-1][j] - "
        "b_j, b_j measured with the untrained network. All in points of accuracy.",
    ]


def _capacity_row(run: RunData, parts: list[str]) -> list[str]:
    cap = run.capacity
    if not cap:
        return [f"`{run.label}`", *[MISSING] * (len(parts) + 3)]
    pct = cap.get("parts_pct") or {}
    return [f"`{run.label}`", *[num(pct.get(p, 0.0), 3) for p in parts],
            num(cap.get("total_pct"), 3), num(cap.get("file_bytes"), 0),
            num(cap.get("file_pct"), 3)]


def capacity_section(ctx: Context) -> SectionOut:
    """Table 1: capacity of model.tsn by part, from the bytes the file holds."""
    parts = parts_of(ctx.runs)
    header = ["run", *[f"{p} %" for p in parts], "total %", "file bytes", "file %"]
    return "Capacity by part (Table 1)", [
        table(header, [_capacity_row(r, parts) for r in ctx.runs]),
        "% of the dense fp32 backbone (32 bits per backbone weight). Total: all parts; file: "
        "with the header and checksum. Heads and norms lie outside the backbone but inside the "
        "file, so they are counted.",
    ]


def post_pruning_section(ctx: Context) -> SectionOut:
    """Table 5: capacity and ACC with and without post-pruning (and other ablations), across
    runs; with one run there is nothing to compare."""
    if not ctx.several:
        return None
    rows = []
    for r in ctx.runs:
        prune, quantize = r.config.get("prune") or {}, r.config.get("quantize") or {}
        similarity = r.config.get("similarity") or {}
        last = r.compression[-1]["mask_pct_after_pruning"] if r.compression else None
        kl = similarity.get("share_from_nearest") or similarity.get("adapt_capacity")
        rows.append([
            f"`{r.label}`", _on(prune.get("enabled")), _on(quantize.get("enabled")), _on(kl),
            num(last), num((r.capacity or {}).get("parts_pct", {}).get("masks"), 3),
            num((r.capacity or {}).get("total_pct"), 3), num(r.results.get("acc")),
        ])
    header = ["run", "post-pruning", "quantization", "KL acts", "last mask %", "masks %",
              "capacity %", "ACC (%)"]
    return "Capacity and ACC across runs (Table 5)", [
        table(header, rows),
        "KL acts: the similarity step picks the task to share from or scales the capacity. "
        "Last mask %: the last task's mask after post-pruning, % of the backbone. The paper's "
        "\"with replay memory\" column has no counterpart: these runs keep no replay memory.",
        figure("accuracy against capacity", ctx.figure(None, "accuracy_vs_capacity.png")),
    ]


def time_section(ctx: Context) -> SectionOut:
    """Table 4: wall time per phase, summed over tasks."""
    rows = []
    for r in ctx.runs:
        if r.has_phases:
            phases = [sum(t["phase_s"].get(p, 0.0) for t in r.per_task) for p in PHASES]
        else:
            phases = [None] * len(PHASES)
        rows.append([f"`{r.label}`", *[num(v, 1) for v in phases],
                     num(r.results.get("time_total_s"), 1)])
    return "Time per phase (Table 4)", [
        table(["run", *[f"{p} (s)" for p in PHASES], "total (s)"], rows),
        "Wall time summed over tasks. Prune includes the retraining after post-pruning and "
        "quantize the codebook fine-tuning (the paper's \"fine tuning time\"); evaluate is the "
        "re-test of every finished task, model_file the coding of model.tsn (runs made before "
        "model_file was timed count it in evaluate). Total: the time recorded per task; it also "
        "holds the probe of the next task before training, so it exceeds the phases' sum a "
        "little.",
    ]
