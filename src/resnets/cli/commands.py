"""One handler per command: turn the parsed flags into one API call and print its result.
Each imports the part of the API it needs when it runs, so that `--help` loads no PyTorch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..errors import UsageError

NOT_OPTIONS = {"command", "handler", "config", "nproc", "quiet"}  # train flags, not options


def positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"--{name} must be at least 1, got {value}")


def int_list(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--{name} takes integers separated by commas, got {text!r}") from None


def cmd_list(args: argparse.Namespace) -> None:
    from ..models import get_config, list_models

    names = list_models(args.pattern)
    if args.json:
        print(json.dumps({n: get_config(n).to_dict() for n in names}, indent=2))
        return
    for name in names:
        cfg = get_config(name)
        kind = ("preact " if cfg.preact else "") + cfg.block
        solid = f" 3D conv3d={cfg.conv3d}" if cfg.spatial_dims == 3 else ""
        print(f"{name:<20} {kind:<18} layers={list(cfg.layers)} shortcut={cfg.shortcut}{solid}")


def cmd_info(args: argparse.Namespace) -> None:
    from ..analysis import model_info

    positive("input-size", args.input_size)
    positive("input-depth", args.input_depth)
    positive("batch-size", args.batch_size)
    overrides = {} if args.in_chans is None else {"in_chans": args.in_chans}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    info = model_info(args.model, args.input_size, args.batch_size, args.input_depth, **overrides)
    if args.json:
        data = {k: v for k, v in vars(info).items() if k != "rows"}
        data["rows"] = [vars(r) for r in info.rows]
        print(json.dumps(data, indent=2))
    else:
        print(info.table())


def cmd_train(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k not in NOT_OPTIONS}
    if args.nproc:
        from ..training.distributed import launch

        argv = sys.argv[1:]
        drop = [i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc=")]
        for i in reversed(drop):
            del argv[i : i + (1 if "=" in argv[i] else 2)]
        return launch(args.nproc, argv)
    if args.quiet:
        flags.setdefault("progress", False)
    if not (getattr(args, "threads", None) or getattr(args, "deterministic", False)):
        from ..threads import preset_threads

        preset_threads()  # before PyTorch loads: OpenMP starts no thread for a busy core
    from ..training import train

    train(args.config, **flags)  # its lines and summary go to the log (stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..infer import evaluate

    positive("batch-size", args.batch_size)
    if args.explain < 0:
        raise UsageError(f"--explain takes a number of images, got {args.explain}")
    report = evaluate(
        args.weights,
        data=args.data,
        split=args.split,
        tta_flip=args.tta_flip,
        batch_size=args.batch_size,
        device=args.device,
        out=args.out,
        backend=args.backend,
        allow_changed_data=args.allow_changed_data,
        explain=args.explain,
    )
    if args.json:
        plain = report.to_dict() if hasattr(report, "to_dict") else dataclasses.asdict(report)
        print(json.dumps(plain, indent=2))
    else:
        print(report.table())


def cmd_predict(args: argparse.Namespace) -> int:
    from ..infer import predict

    positive("topk", args.topk)
    result = predict(
        args.weights,
        args.images,
        topk=args.topk,
        device=args.device,
        backend=args.backend,
        masks_out=args.masks_out,
        overwrite=args.overwrite,
        out=args.out,
        score_threshold=args.score_threshold,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.out:  # a results file takes the place of the table
        print(result.table())
    if args.out:
        n, bad = len(result.predictions), len(result.failed)
        rows = f"{n + bad} rows ({n} predicted, {bad} unreadable)" if bad else f"{n} rows"
        print(f"wrote {rows} to {args.out}", file=sys.stderr)
    return _no_result(len(result.failed) - result.unwritten(), result.unwritten())


def cmd_explain(args: argparse.Namespace) -> int:
    from ..infer.explain import explain
    from ..infer.sources import output_folder

    positive("topk", args.topk)
    target = int(args.target) if args.target is not None and args.target.isdigit() else args.target
    result = explain(
        args.weights,
        args.images,
        method=args.method,
        target=target,
        out=args.out or output_folder(args.weights, "explanations"),
        topk=args.topk,
        device=args.device,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return _no_result(len(result.failed))


def _no_result(unreadable: int, unwritten: int = 0) -> int:
    """Exit code 1, with one line, when some inputs could not be read or their masks could not
    be written (each input says why above)."""
    said = [f"{unreadable} image{'s' * (unreadable != 1)} could not be read"] if unreadable else []
    if unwritten:
        said.append(f"{unwritten} mask{'s' * (unwritten != 1)} not written")
    if said:
        print(f"error: {', '.join(said)}", file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> None:
    from ..infer.export import export

    report = export(
        args.weights,
        args.format,
        out=args.out,
        dynamic_batch=args.dynamic_batch,
        images=args.images,
        tolerance=args.tolerance,
        overwrite=args.overwrite,
        int8=args.int8,
        calibration=args.calibration,
        max_drop=args.max_drop,
    )
    print(report.text())


def cmd_convert(args: argparse.Namespace) -> None:
    from ..infer.convert import convert

    report = convert(
        args.weights, args.output, model=args.model, to=args.to, overwrite=args.overwrite
    )
    print(report.text())


def cmd_experiment(args: argparse.Namespace) -> None:
    from ..analysis import experiments

    depths = int_list("depths", args.depths) if args.depths else None
    common = {"data": args.data, "overwrite": args.overwrite}
    if args.name == "degradation":
        options = {"depths": depths or (20, 56), "epochs": args.epochs or 30, **common}
        if args.recipe:
            options["recipe"] = args.recipe
        result = experiments.degradation(out=args.out or "experiments/degradation", **options)
    else:
        result = experiments.gradient_flow(
            depths=depths or (20, 32, 44, 56, 110),
            steps=args.steps,
            out=args.out or "experiments/gradients",
            **common,
        )
    print(result.text())


RUN_SORT_KEYS = ("start", "model", "data", "best", "test", "time")


def cmd_runs(args: argparse.Namespace) -> None:
    from ..analysis.compare import compare_runs
    from ..analysis.runs import list_runs, runs_table

    if args.compare:
        print(compare_runs(*args.compare, out=args.out).text())
        return
    rows = list_runs(args.root)
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2, default=str))
    else:
        print(runs_table(rows, sort=args.sort, root=args.root))
