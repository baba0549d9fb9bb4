"""Report sections that measure a run's model file rather than read its records: FLOPs and
bit-operations per task (the paper's Table 6) and accuracy with quantized activations (Table 7).

Both start from `model.tsn` alone, so they describe exactly what a user ships. Table 7 also
needs the scenario's data (validation splits to calibrate, test splits to measure); when the
data cannot be found the section says how to give it instead of failing the report.
"""

from __future__ import annotations

from statistics import mean

from tinysubnets.artifact import CompressedModel, load
from tinysubnets.compression.activations import model_activation_accuracy
from tinysubnets.errors import DataError, TSNError
from tinysubnets.nn.inference import DEFAULT_CRITERION, InferenceScores, measure_inference
from tinysubnets.report.context import Context, SectionOut
from tinysubnets.report.flops import model_ops
from tinysubnets.report.markdown import num, table
from tinysubnets.report.rundir import RunData
from tinysubnets.runs import USER_SCENARIO
from tinysubnets.scenarios import Scenario, scenario_of_model

ACTIVATION_BITS = (4, 8, 16)


def _model(ctx: Context, run: RunData) -> CompressedModel | str | None:
    """The run's model file, loaded once per report; or why it cannot be (a user backbone
    and no module given)."""
    if run.model_path is None:
        return None
    if run.model_path not in ctx.models:
        try:
            ctx.models[run.model_path] = load(run.model_path, ctx.backbone)
        except DataError as e:
            if "user backbone" not in str(e):
                raise
            ctx.models[run.model_path] = (
                "Not measured: the model was trained with the user's own backbone; pass it to "
                "`write_report(..., backbone=Module())` or `tsn report --backbone "
                "package.module:Class`.")
    return ctx.models[run.model_path]


INFERENCE_FIGURE = "task_inference.png"


def inference_criterion(ctx: Context, run: RunData) -> str:
    """The criterion `predict(x)` uses for the run's model: the one its run chose."""
    model = _model(ctx, run)
    return model.default_criterion if isinstance(model, CompressedModel) else DEFAULT_CRITERION


def task_inference(ctx: Context, run: RunData) -> list[InferenceScores] | str | None:
    """Task inference on every finished task's test split, measured once per report (the
    section and the heatmap share it); or why it cannot be measured."""
    key = (run.model_path, "inference")
    if key not in ctx.models:
        model = _model(ctx, run)
        if model is None or isinstance(model, str) or model.num_tasks == 0:
            ctx.models[key] = model
        else:
            scenario = _scenario(ctx, run, model)
            ctx.models[key] = scenario if isinstance(scenario, str) else measure_inference(
                model, [task.split("test") for task in scenario.tasks])
    return ctx.models[key]


def _scenario(ctx: Context, run: RunData, model: CompressedModel) -> Scenario | str:
    """The run's scenario rebuilt from the model file, or why it cannot be."""
    if model.scenario.get("name") == USER_SCENARIO:
        return ("Not measured here: the run's tasks are the user's own, which a report cannot "
                "rebuild; measure them from Python (`nn.inference.measure_inference`).")
    try:
        return scenario_of_model(model.scenario, model.num_tasks,
                                 ctx.data_dir or run.config.get("data_dir"))
    except TSNError as e:
        return (f"Not measured: the scenario's data was not found ({e}). Pass `--data-dir` to "
                "`tsn report`, or `--no-activations` to skip the measured sections.")


def task_inference_section(ctx: Context, run: RunData) -> SectionOut:
    """Without task ids: per task, how often its task is found and the accuracy with it."""
    if not ctx.activations:
        return None
    title = f"Without task ids (task inference, {inference_criterion(ctx, run)})"
    rows = task_inference(ctx, run)
    if rows is None:
        return None
    if isinstance(rows, str):
        return title, [rows]
    cells = [[t, num(r.task_incremental), num(r.task_found), num(r.batch_found),
              num(r.class_incremental)] for t, r in enumerate(rows)]
    cells.append(["mean", *[num(mean(float(c[i]) for c in cells)) for i in range(1, 5)]])
    figure = ctx.figure(run, INFERENCE_FIGURE)
    return title, [
        "Each test input is given to every task's subnetwork and the most confident one answers "
        "(`model.predict(x)` without a task id; the criterion is the one the run measured best "
        "on its validation data, recorded in the file). Task found: % of "
        "the task's inputs attributed to it, one by one and per batch of 64; with the task "
        "inferred, a wrong task is a wrong answer (class-incremental).",
        table(["task", "task given %", "task found %", "per batch of 64 %", "task inferred %"],
              cells),
        f"![Task inference]({figure})" if figure else None,
    ]


def _cells(values: list[float | None]) -> list[str]:
    """Millions, except the third value (a share in %)."""
    return ["" if v is None else num(v, 1) if i == 2 else num(v / 1e6, 3)
            for i, v in enumerate(values)]


def flops_section(ctx: Context, run: RunData) -> SectionOut:
    """Table 6: per task, MFLOPs dense and with M_t, and bit-operations at several widths."""
    title = "FLOPs and bit-operations per task (Table 6)"
    model = _model(ctx, run)
    if isinstance(model, str):
        return title, [model]
    if model is None or model.num_tasks == 0:
        return None
    values = [[o.dense_flops, o.sparse_flops, 100.0 * o.sparse_macs / max(1, o.dense_macs),
               o.bops(32, 32, sparse=False), o.bops(8, 8), o.bops(4, 4),
               o.codebook_bops(8), o.codebook_bops(16)] for o in model_ops(model)]
    rows = [[t, *_cells(v)] for t, v in enumerate(values)]
    rows.append(["mean", *_cells([mean(v[i] or 0.0 for v in values)
                                  for i in range(len(values[0]))])])
    return title, [
        "Per input sample, for the MAC layers (masked layers and the task's head; BatchNorm, "
        "ReLU, pooling and additions left out). MFLOPs = 2 × MACs / 10^6; dense: every backbone "
        "weight; sparse: only those in the task's mask M_t. Bit-operations (M BOPs) = MACs × "
        "weight bits × activation bits: <32,32> dense is the fp32 model; <8,8> and <4,4> with "
        "M_t; codebook: each weight at the bit-width its owner task stored it with, activations "
        "at 8 or 16 bits.",
        table(["task", "MFLOPs dense", "MFLOPs sparse", "sparse %", "MBOPs <32,32> dense",
               "MBOPs <8,8>", "MBOPs <4,4>", "MBOPs codebook, a8", "MBOPs codebook, a16"],
              rows),
    ]


def activations_section(ctx: Context, run: RunData) -> SectionOut:
    """Table 7: test accuracy per task with weights from the codebooks and activations
    quantized to 4, 8 and 16 bits (uniform, per layer, calibrated on the validation split)."""
    if not ctx.activations:
        return None
    title = "Accuracy with quantized activations (Table 7)"
    model = _model(ctx, run)
    if isinstance(model, str):
        return title, [model]
    if model is None or model.num_tasks == 0:
        return None
    scenario = _scenario(ctx, run, model)
    if isinstance(scenario, str):
        return title, [scenario]
    keys = ["fp32", *[f"{b}b" for b in ACTIVATION_BITS]]
    rows = []
    for t, task in enumerate(scenario.tasks):
        acc = model_activation_accuracy(
            model, t, task.split("val"), task.split("test"), ACTIVATION_BITS
        )
        rows.append([t, *[num(acc[k]) for k in keys]])
    rows.append(["mean", *[num(mean(float(r[i]) for r in rows)) for i in range(1, len(keys) + 1)]])
    return title, [
        "Test accuracy (%) of each task from model.tsn: weights are the stored codebook values; "
        "the input of every masked layer and of the head is quantized uniformly to 2^b levels "
        "over the range seen on the task's validation split (<w,4b>, <w,8b>, <w,16b>).",
        table(["task", "fp32 activations", "4-bit", "8-bit", "16-bit"], rows),
        f"Data: {scenario.source}.",
    ]
