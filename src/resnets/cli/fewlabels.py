"""The few-labels commands, declared without importing PyTorch: pretrain, probe, fewshot."""

from __future__ import annotations

import argparse
import json

from ..options import FEWSHOT_METHODS
from .commands import int_list, positive


def add_commands(sub, formatter: type[argparse.HelpFormatter], train_flags) -> None:
    _pretrain_command(sub, train_flags)
    _probe_command(sub, formatter)
    _fewshot_command(sub, formatter)


def _pretrain_command(sub, train_flags) -> None:
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining of a backbone on images alone (SimCLR, BYOL, ...)",
        description="Pretrain a backbone without labels: two random views of each image, a "
        "method's loss between them. Takes train's flags (data, model, epochs, batch size, "
        "lr, resume, ...); its run folder's best.safetensors is the backbone, for "
        "resnets train --pretrained RUN and resnets fewshot RUN.",
    )
    train_flags(p)
    p.set_defaults(handler=cmd_pretrain)


def _probe_command(sub, formatter) -> None:
    p = sub.add_parser(
        "probe",
        help="N labels per class: a linear probe, a fine-tune and the model from scratch",
        formatter_class=formatter,
        description="What a (pretrained) backbone is worth with few labels: for each budget, "
        "several draws of N labelled training images per class; a linear probe of the frozen "
        "features, a fine-tune and the same model trained from scratch on them, beside "
        "raw-pixel logistic regression, scored on the test split as mean ± 95 %% CI over "
        "the draws.",
    )
    p.add_argument("weights", help="run folder or weights file (a pretrain run's backbone)")
    p.add_argument("--data", help="data spec (default: the run's own)")
    p.add_argument("--labels", default="1,5,14", help="labelled images per class, one or more")
    p.add_argument("--draws", type=int, default=5, help="draws of labelled images per budget")
    p.add_argument("--seed", type=int, default=0, help="draws the labelled images")
    p.add_argument(
        "--linear-only",
        action="store_true",
        help="the linear probe and pixels alone (no fine-tune, no model from scratch)",
    )
    p.add_argument("--epochs", type=int, help="epochs of the fine-tunes (default: train's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--out", help="folder for probe.json (default: RUN/probe)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_probe)


def _fewshot_command(sub, formatter) -> None:
    p = sub.add_parser(
        "fewshot",
        help="N-way K-shot episodes of classes the backbone never saw: mean ± 95 %% CI",
        formatter_class=formatter,
        description="Score a backbone on few-shot episodes: N classes, K labelled images each "
        "(the support) and Q queries, drawn from the novel classes; each classifier is fitted "
        "on the support alone. Train the backbone on the base classes first: resnets train "
        "--classes 0,1,2,3,4.",
    )
    p.add_argument("weights", help="run folder or weights file of a trained classifier")
    p.add_argument("--data", help="data spec (default: the run's own)")
    p.add_argument(
        "--classes",
        help="the episodes' classes, by name or index (default: those of the data the "
        "backbone was not trained on)",
    )
    p.add_argument("--way", type=int, default=5, help="classes per episode")
    p.add_argument("--shot", default="1,5", help="labelled images per class, one or more")
    p.add_argument("--queries", type=int, default=15, help="query images per class")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per shot")
    p.add_argument(
        "--methods",
        default=",".join(FEWSHOT_METHODS),
        help="classifiers: " + ", ".join(FEWSHOT_METHODS),
    )
    p.add_argument(
        "--split",
        default="all",
        choices=("train", "val", "test", "all"),
        help="where the episodes' images come from (test: images a backbone pretrained on "
        "the training split never saw)",
    )
    p.add_argument("--seed", type=int, default=0, help="draws the episodes")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--out", help="folder for fewshot.json and episodes.csv (default: RUN/fewshot)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_fewshot)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .commands import cmd_train

    if getattr(args, "method", None) is None and not getattr(args, "resume", None):
        args.method = "simclr"
    return cmd_train(args)


def cmd_probe(args: argparse.Namespace) -> None:
    from ..fewlabels.probe import probe

    positive("draws", args.draws)
    positive("epochs", args.epochs)
    report = probe(
        args.weights,
        data=args.data,
        per_class=int_list("labels", args.labels),
        draws=args.draws,
        seed=args.seed,
        train_models=not args.linear_only,
        epochs=args.epochs,
        device=args.device,
        out=args.out,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())


def cmd_fewshot(args: argparse.Namespace) -> None:
    from ..fewlabels.fewshot import fewshot

    for name in ("way", "queries", "episodes", "batch_size"):
        positive(name.replace("_", "-"), getattr(args, name))
    report = fewshot(
        args.weights,
        data=args.data,
        classes=args.classes,
        way=args.way,
        shot=int_list("shot", args.shot),
        queries=args.queries,
        episodes=args.episodes,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        out=args.out,
        split=args.split,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
