"""Round trips per second of a full RunConfig through `dacapo_store.converter`.

Two baselines are measured in the same run:

- a converter that makes its unstructure/structure functions again on every call, with
  the family tag resolved by a dict lookup: how DaCapo 0.3 converts (it `eval`s the tag
  instead, which would only make that baseline slower);
- `attrs.asdict(config)`, for the unstructure half.

The run's datasplit nests the wrapper arrays DaCapo's DataSplitGenerator emits (concat of
binarized, resampled zarr arrays; normalised intensities; crops, masks).
Targets: the round trip at least 50x the rebuild-every-call baseline, and unstructure
within 2x of `attrs.asdict`. Run: `python bench/bench_converter.py`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path, PurePath
from typing import Any, NamedTuple

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from dacapo_store.configs import (
    AffinitiesTaskConfig,
    ArchitectureConfig,
    ArrayConfig,
    AugmentConfig,
    BinarizeArrayConfig,
    CNNectomeUNetConfig,
    ConcatArrayConfig,
    Coordinate,
    CropArrayConfig,
    DatasetConfig,
    DataSplitConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    GunpowderTrainerConfig,
    IntensitiesArrayConfig,
    IntensityAugmentConfig,
    MissingAnnotationsMaskConfig,
    RawGTDatasetConfig,
    ResampledArrayConfig,
    Roi,
    RunConfig,
    SimpleAugmentConfig,
    StartConfig,
    TaskConfig,
    TrainerConfig,
    TrainValidateDataSplitConfig,
    ZarrArrayConfig,
)
from dacapo_store.configs._base import document_key
from dacapo_store.conversion import converter

ROUND_TRIP_TARGET = 50.0  # ours at least this many times the rebuild-every-call baseline
ASDICT_TARGET = 2.0  # our unstructure at most this many times attrs.asdict's time
REPEATS = 15
REPEAT_SECONDS = 0.1


class Timing(NamedTuple):
    """Seconds per call: of the fastest batch, and of the median batch."""

    best: float
    median: float


def full_run() -> RunConfig:
    """A run with every family present."""

    def zarr(name: str, dataset: str) -> ZarrArrayConfig:
        return ZarrArrayConfig(
            name=name,
            file_name=Path("/data/jrc_hela-2.zarr"),
            dataset=dataset,
            snap_to_grid=[4, 4, 4],
            axes=["z", "y", "x"],
        )

    def gt(crop: str, classes: list[str]) -> ConcatArrayConfig:
        # What DataSplitGenerator makes per crop: one binarized, resampled array per class.
        sources = {
            c: BinarizeArrayConfig(
                name=f"{crop}/[{'&'.join(classes)}]_{c}_8nm_binarized",
                source_array_config=ResampledArrayConfig(
                    name=f"gt_{crop}/{c}_resampled",
                    source_array_config=zarr(f"gt_{crop}/{c}_uint8", f"{crop}/{c}"),
                    upsample=[1, 1, 1],
                    downsample=[2, 2, 2],
                    interp_order=False,
                ),
                groupings=[(c, [])],
            )
            for c in classes
        }
        return ConcatArrayConfig(
            name=f"{crop}/[{'&'.join(classes)}]_gt", channels=classes, source_array_configs=sources
        )

    def raw_gt(name: str) -> RawGTDatasetConfig:
        classes = ["mito", "er", "nuc"]
        labels = gt(f"jrc_hela-2/{name}", classes)
        return RawGTDatasetConfig(
            name=name,
            weight=2,
            raw_config=IntensitiesArrayConfig(
                name=f"{name}_raw_uint8",
                source_array_config=zarr(f"{name}_raw", "volumes/raw/s0"),
                min=0,
                max=255,
            ),
            gt_config=CropArrayConfig(
                name=f"{name}_gt_crop", source_array_config=labels, roi=Roi((0, 0, 0), (800, 800, 800))
            ),
            mask_config=MissingAnnotationsMaskConfig(
                name=f"{name}_mask", source_array_config=labels, groupings=[(c, [1, 2]) for c in classes]
            ),
            sample_points=[[10, 20, 30], [40, 50, 60]],
        )

    return RunConfig(
        task_config=AffinitiesTaskConfig(
            name="affs", neighborhood=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], lsds=True
        ),
        architecture_config=CNNectomeUNetConfig(
            name="unet",
            input_shape=[132, 132, 132],
            fmaps_out=12,
            fmaps_in=1,
            num_fmaps=12,
            fmap_inc_factor=6,
            downsample_factors=[[2, 2, 2], [2, 2, 2], [2, 2, 2]],
            kernel_size_down=[[[3, 3, 3], [3, 3, 3]]] * 4,
            kernel_size_up=[[[3, 3, 3], [3, 3, 3]]] * 3,
            eval_shape_increase=[72, 72, 72],
        ),
        trainer_config=GunpowderTrainerConfig(
            name="gunpowder",
            batch_size=2,
            learning_rate=1e-4,
            augments=[
                SimpleAugmentConfig(),
                ElasticAugmentConfig(
                    control_point_spacing=[100, 100, 100],
                    control_point_displacement_sigma=[10.0, 10.0, 10.0],
                    rotation_interval=(0.0, 1.5707963),
                    subsample=8,
                    uniform_3d_rotation=True,
                ),
                IntensityAugmentConfig(scale=(0.25, 1.75), shift=(-0.5, 0.35), clip=False),
                GammaAugmentConfig(gamma_range=(0.5, 2.0)),
            ],
            snapshot_interval=10000,
        ),
        datasplit_config=TrainValidateDataSplitConfig(
            name="hela",
            train_configs=[raw_gt("crop1"), raw_gt("crop2")],
            validate_configs=[raw_gt("crop3")],
        ),
        name="affs_unet_hela",
        repetition=0,
        num_iterations=100000,
        validation_interval=5000,
        start_config=StartConfig(run="pretrained", criterion="f1_score"),
    )


# --- the rebuild-every-call baseline ------------------------------------------------------

FAMILY_BASES = (
    TaskConfig,
    StartConfig,
    ArchitectureConfig,
    TrainerConfig,
    AugmentConfig,
    DataSplitConfig,
    DatasetConfig,
    ArrayConfig,
)


def _members(base: type) -> dict[str, type]:
    found = {base.__name__: base}
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            found[sub.__name__] = sub
            stack.append(sub)
    return found


def _035(cls: type) -> dict[str, Any]:
    """cattrs overrides leaving out the fields DaCapo 0.3.5's documents don't have."""
    return {a.name: override(omit=True) for a in attrs.fields(cls) if document_key(a, "0.3.5") is None}


def rebuilding_converter() -> cattrs.Converter:
    """A plain cattrs converter that makes the functions of a family member on every call."""
    conv = cattrs.Converter()
    classes = {name: cls for base in FAMILY_BASES for name, cls in _members(base).items()}

    def in_family(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, FAMILY_BASES)

    def unstructure(obj: Any) -> dict:
        fn = make_dict_unstructure_fn(type(obj), conv, **_035(type(obj)))
        return {"__type__": type(obj).__name__, **fn(obj)}

    def structure(doc: dict, _: type) -> Any:
        cls = classes[doc["__type__"]]
        return make_dict_structure_fn(cls, conv, **_035(cls))(doc, cls)

    conv.register_unstructure_hook_func(in_family, unstructure)
    conv.register_structure_hook_func(in_family, structure)
    conv.register_unstructure_hook(
        RunConfig, lambda run: make_dict_unstructure_fn(RunConfig, conv, **_035(RunConfig))(run)
    )
    conv.register_structure_hook(
        RunConfig, lambda doc, _: make_dict_structure_fn(RunConfig, conv, **_035(RunConfig))(doc, RunConfig)
    )
    conv.register_structure_hook(Coordinate, lambda v, _: Coordinate(v))
    conv.register_unstructure_hook(Coordinate, tuple)
    conv.register_structure_hook(Roi, lambda v, _: Roi(*v))
    conv.register_unstructure_hook(Roi, lambda r: (tuple(r[0]), tuple(r[1])))
    conv.register_structure_hook(Path, lambda v, _: Path(v))
    conv.register_unstructure_hook(PurePath, str)
    return conv


# --- timing -------------------------------------------------------------------------------


def calibrate(fn: Callable[[], Any]) -> int:
    """How many calls of `fn` take about REPEAT_SECONDS."""
    fn()
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= REPEAT_SECONDS / 5:
            return max(1, int(loops * REPEAT_SECONDS / elapsed))
        loops *= 2


def compare(a: Callable[[], Any], b: Callable[[], Any]) -> tuple[Timing, Timing]:
    """Seconds per call of `a` and `b`, batches interleaved so load from other processes hits both."""
    loops_a, loops_b = calibrate(a), calibrate(b)
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(REPEATS):
        for fn, loops, times in ((a, loops_a, times_a), (b, loops_b, times_b)):
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            times.append((time.perf_counter() - start) / loops)
    return Timing(min(times_a), statistics.median(times_a)), Timing(min(times_b), statistics.median(times_b))


def report(label: str, timing: Timing) -> None:
    print(f"  {label:<38} {1 / timing.best:>10,.0f}/s best  {1 / timing.median:>10,.0f}/s median")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    config = full_run()
    rebuild = rebuilding_converter()

    # Same work on both sides: the baseline must give our document and our config back.
    doc = converter.unstructure(config)
    assert converter.structure(doc, RunConfig) == config
    assert rebuild.unstructure(config) == doc
    assert rebuild.structure(doc, RunConfig) == config

    ours_rt, base_rt = compare(
        lambda: converter.structure(converter.unstructure(config), RunConfig),
        lambda: rebuild.structure(rebuild.unstructure(config), RunConfig),
    )
    ours_un, asdict_un = compare(lambda: converter.unstructure(config), lambda: attrs.asdict(config))

    print("dacapo_store converter benchmark: full RunConfig (every family present)")
    print(f"  python {sys.version.split()[0]}, cattrs {version('cattrs')}, attrs {version('attrs')}")
    print(f"  {REPEATS} interleaved batches of ~{REPEAT_SECONDS}s per measurement")
    print("round trip (unstructure + structure):")
    report("dacapo_store.converter", ours_rt)
    report("rebuild fns every call (DaCapo 0.3)", base_rt)
    print("unstructure:")
    report("dacapo_store.converter", ours_un)
    report("attrs.asdict", asdict_un)

    # The verdict uses the fastest batches (least disturbed by other load); medians shown too.
    rt_ratio = base_rt.best / ours_rt.best
    un_ratio = ours_un.best / asdict_un.best
    rt_ok = rt_ratio >= ROUND_TRIP_TARGET
    un_ok = un_ratio <= ASDICT_TARGET
    print("targets (best batches; medians in brackets):")
    print(
        f"  round trip speedup vs rebuild-every-call: {rt_ratio:6.1f}x "
        f"[{base_rt.median / ours_rt.median:.1f}x]  (target >= {ROUND_TRIP_TARGET:.0f}x)  {verdict(rt_ok)}"
    )
    print(
        f"  unstructure time / attrs.asdict time:     {un_ratio:6.2f}x "
        f"[{ours_un.median / asdict_un.median:.2f}x]  (target <= {ASDICT_TARGET:.0f}x)  {verdict(un_ok)}"
    )
    return 0 if rt_ok and un_ok else 1


if __name__ == "__main__":
    sys.exit(main())
