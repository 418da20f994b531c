"""`dacapo-store demo`: a small registry built end to end on the files backend.

It stores real configs, trains a tiny network for a few steps per checkpoint on synthetic
blobs, records real validation scores, picks the best checkpoint per criterion, and starts
a new run (with another head) from the best one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import attrs
import click
from rich.markup import escape

from ..weights.stats import TrainingIterationStats
from .app import command, say, table

CRITERIA = ("f1_score", "loss")


def _model(out_channels: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, out_channels, 1),  # the head
    )


def _blobs(n: int, generator):
    """Noisy images of discs and their foreground masks."""
    import torch

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = torch.rand(n, 2, generator=generator) * 24 + 4
    radii = torch.rand(n, generator=generator) * 5 + 3
    dist = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2).sqrt()
    mask = (dist < radii[:, None, None]).long()
    raw = mask.float() + 0.6 * torch.randn(n, 32, 32, generator=generator)
    return raw[:, None], mask


def _configs():
    from ..configs import (
        DistanceTaskConfig,
        DummyArchitectureConfig,
        GunpowderTrainerConfig,
        RawGTDatasetConfig,
        RunConfig,
        SimpleAugmentConfig,
        StartConfig,
        TrainValidateDataSplitConfig,
        ZarrArrayConfig,
    )

    def dataset(name: str) -> RawGTDatasetConfig:
        return RawGTDatasetConfig(
            name,
            raw_config=ZarrArrayConfig(f"{name}_raw", "demo/blobs.zarr", f"{name}/raw"),
            gt_config=ZarrArrayConfig(f"{name}_gt", "demo/blobs.zarr", f"{name}/gt"),
        )

    split = TrainValidateDataSplitConfig("blobs", [dataset("train")], [dataset("validate")])
    task = DistanceTaskConfig("blobs_fg", channels=["fg"], clip_distance=8.0, tol_distance=2.0)
    trainer = GunpowderTrainerConfig(
        "adam_small", batch_size=8, learning_rate=0.01, augments=[SimpleAugmentConfig()]
    )
    base = RunConfig(
        task_config=task,
        architecture_config=DummyArchitectureConfig("tiny_cnn_2", num_in_channels=1, num_out_channels=2),
        trainer_config=trainer,
        datasplit_config=split,
        name="blobs_baseline",
        repetition=0,
        num_iterations=500,
        validation_interval=100,
    )
    finetune = attrs.evolve(
        base,
        name="blobs_finetune",
        architecture_config=DummyArchitectureConfig("tiny_cnn_3", num_in_channels=1, num_out_channels=3),
        start_config=StartConfig("blobs_baseline", "f1_score"),
    )
    return base, finetune


def _train(run, weights_store) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = _model(run.architecture_config.num_out_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.trainer_config.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    val_raw, val_mask = _blobs(32, generator)
    rows = []
    steps = 10  # a few real steps stand in for validation_interval iterations
    for iteration in range(run.validation_interval, run.num_iterations + 1, run.validation_interval):
        stats = []
        for step in range(steps):
            start = time.perf_counter()
            raw, mask = _blobs(run.trainer_config.batch_size, generator)
            optimizer.zero_grad()
            step_loss = loss_fn(model(raw), mask)
            step_loss.backward()
            optimizer.step()
            trained = iteration - run.validation_interval + step * (run.validation_interval // steps)
            stats.append(TrainingIterationStats(trained, step_loss.item(), time.perf_counter() - start))
        weights_store.store_training_stats(run, stats)
        with torch.no_grad():
            logits = model(val_raw)
            loss = float(loss_fn(logits, val_mask))
            pred = logits.argmax(1)
        tp = float(((pred == 1) & (val_mask == 1)).sum())
        f1 = 2 * tp / max(float((pred == 1).sum() + (val_mask == 1).sum()), 1.0)
        weights_store.store_weights(run, iteration, model, optimizer)
        weights_store.store_validation_scores(
            run, iteration, {"f1_score": f1, "loss": loss}, dataset="validate"
        )
        rows.append((iteration, f"{f1:.3f}", f"{loss:.4f}"))
    table(["iteration", "f1_score", "loss"], rows, title=f"{run.name}: checkpoints and validation scores")
    stats = weights_store.retrieve_training_stats(run)
    say(f"   training stats: {len(stats)} iterations, loss {stats[0].loss:.3f} -> {stats[-1].loss:.3f}")


@command(
    epilog="Example: dacapo-store demo /tmp/my-demo && dacapo-store --store files:/tmp/my-demo list runs"
)
@click.argument(
    "directory", required=False, default="dacapo-demo", type=click.Path(file_okay=False, path_type=Path)
)
def demo(directory: Path) -> None:
    """Build a small registry in DIRECTORY (default ./dacapo-demo) and start a run from the best weights.

    Rerunning it in the same folder reuses what is there.
    """
    from ..config_store import FileConfigStore
    from ..weights import LocalWeightsStore

    directory = directory.resolve()
    configs = FileConfigStore(directory / "configs")
    weights_store = LocalWeightsStore(directory)
    base, finetune = _configs()

    say(f"[bold]1. Storing configs[/bold] in {escape(configs.describe())}", markup=True)
    for run in (base, finetune):
        configs.store_run_config(run)
        say(f"   run {run.name}: task {run.task_config.name}, architecture {run.architecture_config.name}")

    say(
        f"[bold]2. Training[/bold] {escape(base.name)} (a tiny CNN on synthetic blobs), "
        "storing weights, scores and training stats",
        markup=True,
    )
    if weights_store.iterations(base):
        say(f"   {base.name} already has checkpoints {weights_store.iterations(base)}; reusing them")
    else:
        _train(base, weights_store)

    say("[bold]3. Best checkpoint per criterion[/bold]", markup=True)
    table(
        ["criterion", "best iteration"],
        [(c, weights_store.retrieve_best(base, c)) for c in CRITERIA],
    )

    start = finetune.start_config
    say(
        f"[bold]4. Starting[/bold] {escape(finetune.name)} from {escape(start.run)} by "
        f"{escape(start.criterion)} (new head: {finetune.architecture_config.num_out_channels} channels)",
        markup=True,
    )
    model = _model(finetune.architecture_config.num_out_channels)
    # The report is shown as a table below; the library's own log line would repeat it.
    logging.getLogger("dacapo_store.start").setLevel(logging.ERROR)
    report = start.start_type(start, weights_store).initialize_weights(model)
    say(f"   loaded iteration {report.iteration}")
    table(
        ["outcome", "keys"],
        [
            ("loaded", ", ".join(report.loaded)),
            ("mismatched (kept new)", ", ".join(report.mismatched)),
            ("missing", ", ".join(report.missing)),
            ("unexpected", ", ".join(report.unexpected)),
        ],
    )
    where = escape(str(directory))
    say(f"[bold]Done.[/bold] Look around: dacapo-store --store files:{where} info", markup=True)
    say(f"   dacapo-store --store files:{directory} weights list {base.name}")
    say(f"   dacapo-store --store files:{directory} lineage {base.name}")
