"""The ``eeopt`` command line: fit, evaluate, compare, report, datasets.

``DATA`` is an eeopt ``.npz``, an MSDNet-family cache (``logits_single.pth``) or the name of a
shipped dataset. Bad input gives one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eeopt.data import ExitData


class CLIError(Exception):
    """A user-facing error: printed as one line."""


def _shipped_names() -> list[str]:
    try:
        from eeopt import datasets
    except ImportError:
        return []
    return list(datasets.names())


def load_splits(
    spec: str, *, costs: str | None = None, test: str | None = None, random_state: int = 0
) -> tuple[ExitData, ExitData]:
    """(validation, test) from a dataset name, an MSDNet cache, or one or two ``.npz`` files.

    A single ``.npz`` without ``test`` is split in half at random (``random_state``).
    """
    if test is not None:
        return load_one(spec, "val", costs=costs), load_one(test, "test", costs=costs)
    path = Path(spec)
    if path.suffix == ".pth":
        from eeopt import io

        return io.load_msdnet_cache(path, costs=None if costs is None else io.read_costs(costs))
    if not path.exists() and spec in _shipped_names():
        from eeopt import datasets

        return datasets.load(spec, "val"), datasets.load(spec, "test")
    data = load_one(spec, "val", costs=costs)
    order = np.random.default_rng(random_state).permutation(data.n_samples)
    half = data.n_samples // 2
    return data.subset(order[:half]), data.subset(order[half:])


def load_one(spec: str, split: str, *, costs: str | None = None) -> ExitData:
    """One split: ``.npz`` as is; a cache's or a dataset's ``split`` ("val" or "test")."""
    path = Path(spec)
    if path.suffix == ".pth":
        from eeopt import io

        val, test = io.load_msdnet_cache(
            path, costs=None if costs is None else io.read_costs(costs)
        )
        return val if split == "val" else test
    if path.exists():
        if path.suffix != ".npz":
            raise CLIError(
                f"DATA {spec!r}: expected an eeopt .npz, a .pth cache or a dataset name."
            )
        data = ExitData.load(path)
    elif spec in _shipped_names():
        from eeopt import datasets

        data = datasets.load(spec, split)
    else:
        names = ", ".join(_shipped_names()) or "none installed"
        raise CLIError(f"DATA {spec!r} is neither a file nor a shipped dataset ({names}).")
    if costs is not None:
        from eeopt import io

        data = data.with_costs(io.read_costs(costs))
    return data


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise CLIError(f"--option {pair!r}: write it as name=value, e.g. reset=zero.")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(f"{name} must be comma-separated numbers, got {text!r}.") from None


def _cmd_fit(args: argparse.Namespace) -> None:
    import eeopt

    data = load_one(args.data, "val", costs=args.costs)
    options = _options(args.option)
    for key in ("budget", "tolerance", "threshold", "patience", "target"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    for key, value in _seeded([args.method], args.random_state).get(args.method, {}).items():
        options.setdefault(key, value)
    if args.method == "eenet":
        options.setdefault("verbose", not args.quiet)
    policy = eeopt.fit(data, method=args.method, **options)
    policy.save(args.output)
    result = policy.evaluate(data)
    print(
        f"fitted {args.method} on {data.n_samples} samples: accuracy {result.accuracy:.4f}, "
        f"mean cost {result.mean_cost:.6g}, speedup {result.speedup:.3f}x"
    )
    print(f"wrote {args.output}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import eeopt

    if not Path(args.policy).exists():
        raise CLIError(f"POLICY {args.policy!r} does not exist.")
    policy = eeopt.load_policy(args.policy)
    data = load_one(args.data, "test", costs=args.costs)
    result = policy.evaluate(data, n_bootstrap=args.bootstrap, random_state=args.random_state)
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{policy.method} on {data.n_samples} samples"
        + (f" ({args.bootstrap} bootstrap resamples, 95% intervals)" if args.bootstrap else "")
    )
    formats = {"accuracy": ".4f", "mean_cost": ".6g", "speedup": ".3f"}
    for key, spec in formats.items():
        value = summary[key]
        interval = summary.get("intervals", {}).get(key)
        extra = f"  [{interval[0]:{spec}}, {interval[1]:{spec}}]" if interval else ""
        print(f"  {key:15s} {'n/a' if value is None else format(value, spec)}{extra}")
    print("  exit_fractions  " + " ".join(f"{f:.3f}" for f in result.exit_fractions))


def _budgets(args: argparse.Namespace, val: ExitData) -> np.ndarray | None:
    budgets = _floats(args.budgets, "--budgets")
    if budgets is not None:
        return np.array(budgets)
    if args.n_budgets:
        return np.linspace(val.costs[0], val.costs[-1], args.n_budgets + 2)[1:-1]
    return None


def _seeded(methods: list[str] | None, random_state: int) -> dict[str, dict[str, Any]]:
    """Per-method options giving ``random_state`` to the methods that draw random numbers
    (EENet's initialisation), so that a command's output is the same from run to run."""
    from eeopt.methods import METHODS, method_names

    names = method_names() if methods is None else methods
    return {
        m: {"random_state": random_state}
        for m in names
        if m in METHODS and "random_state" in METHODS[m].options
    }


def _methods(text: str | None) -> list[str] | None:
    return None if text is None else [m.strip() for m in text.split(",") if m.strip()]


def _compare_options(args: argparse.Namespace, val: ExitData | None) -> dict[str, Any]:
    """Keyword arguments of eeopt.compare from the options compare, report and benchmark
    share (``val`` places the --n-budgets budgets; benchmark has cost fractions only)."""
    fractions = _floats(args.cost_fractions, "--cost-fractions")
    budgets = None
    if val is not None:
        if args.budgets is not None and fractions is not None:
            raise CLIError("give --budgets or --cost-fractions, not both.")
        if args.budgets is not None or fractions is None:
            budgets = _budgets(args, val)
    return {
        "budgets": budgets,
        "cost_fractions": fractions,
        "n_splits": args.splits,
        "calibration_size": _size(args.calibration_size),
        "reference": args.reference,
        "random_state": args.random_state,
        "n_jobs": args.n_jobs,
        "verbose": not args.quiet,
    }


def _size(text: str | None) -> int | float | None:
    """--calibration-size: a count ("1500") or a share ("0.5")."""
    if text is None:
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise CLIError(
            f"--calibration-size must be a count (1500) or a share (0.5), got {text!r}."
        ) from None


def _cmd_compare(args: argparse.Namespace) -> None:
    import eeopt

    writers = {".csv": "to_csv", ".md": "to_markdown", ".tex": "to_latex"}
    for path in args.table or []:
        if Path(path).suffix not in writers:
            raise CLIError(f"--table {path!r}: use a .csv, .md or .tex file name.")
    val, test = load_splits(
        args.data, costs=args.costs, test=args.test, random_state=args.random_state
    )
    methods = _methods(args.methods)
    table = eeopt.compare(val, test, methods, **_compare_options(args, val))
    print(table)
    for path in args.table or []:
        getattr(table, writers[Path(path).suffix])(path)
        print(f"wrote {path}")
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from eeopt.report import heldout_fronts_figure

        fig = heldout_fronts_figure(
            val,
            test,
            methods or eeopt.method_names(),
            random_state=args.random_state,
            figsize=(6, 4),
            verbose=not args.quiet,
        )
        fig.savefig(args.output)
        plt.close(fig)
        print(f"wrote {args.output}")


def _cmd_report(args: argparse.Namespace) -> None:
    import eeopt
    from eeopt.report import write_report

    val, test = load_splits(
        args.data, costs=args.costs, test=args.test, random_state=args.random_state
    )
    methods = _methods(args.methods)
    table = eeopt.compare(val, test, methods, **_compare_options(args, val))
    print(table)
    path = write_report(
        val,
        test,
        args.output,
        table=table,
        random_state=args.random_state,
        command=_command_line(args),
        verbose=not args.quiet,
    )
    print(f"wrote {path}")


def _command_line(args: argparse.Namespace) -> str:
    """The ``eeopt report`` command as given (for the report's footer)."""
    words = ["eeopt", "report", args.data]
    for flag, value in (
        ("--test", args.test),
        ("--costs", args.costs),
        ("--methods", args.methods),
        ("--budgets", args.budgets),
        ("--cost-fractions", args.cost_fractions),
        ("--n-budgets", args.n_budgets if args.n_budgets != 5 else None),
        ("--splits", args.splits if args.splits != 1 else None),
        ("--calibration-size", args.calibration_size),
        ("--reference", args.reference if args.reference != "final-exit" else None),
        ("--random-state", args.random_state or None),
        ("-o", args.output),
    ):
        if value is not None:
            words += [flag, str(value)]
    return " ".join(words)


def _benchmark_sources(specs: list[str], costs: str | None) -> dict[str, Any]:
    """name -> one ExitData (an .npz: pooled and re-split) or a (val, test) pair."""
    sources: dict[str, Any] = {}
    for spec in specs:
        path = Path(spec)
        # A cache is named by its folder (every MSDNet-family cache is logits_single.pth).
        name = path.parent.name if path.suffix == ".pth" else path.stem if path.suffix else spec
        if name in sources:
            raise CLIError(f"DATA {spec!r}: two inputs are named {name!r}; rename one file.")
        if path.suffix == ".npz":
            sources[name] = load_one(spec, "val", costs=costs)
        else:
            sources[name] = load_splits(spec, costs=costs)
    return sources


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from eeopt.compare import compare_many

    out = Path(args.output)
    sources = _benchmark_sources(args.data, args.costs)
    table = compare_many(sources, _methods(args.methods), **_compare_options(args, None))
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv", out / "summary.csv"]
    table.to_csv(written[0])
    table.to_csv(written[1], level="summary")
    for name in table.datasets:
        written += _benchmark_files(table, name, out)
    for path in written:
        print(f"wrote {path}")


def _benchmark_files(table: Any, name: str, out: Path) -> list[Path]:
    """A dataset's accuracy and speedup tables (.md, .tex) and its comparison figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eeopt import plot

    written = []
    for metric in ("accuracy", "speedup"):
        pivot = table.pivot(metric, name)
        for suffix, writer in ((".md", pivot.to_markdown), (".tex", pivot.to_latex)):
            path = out / f"{name}-{metric}{suffix}"
            writer(path)
            written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    plot.plot_comparison(table, dataset=name, ax=ax)
    path = out / f"{name}-comparison.svg"
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return [*written, path]


def _cmd_datasets(args: argparse.Namespace) -> None:
    names = _shipped_names()
    if not names:
        print("no shipped datasets installed")
        return
    from eeopt import datasets

    width = max(len(name) for name in names)
    for name in names:
        data = datasets.load(name, "test")
        accuracy = " ".join(f"{a:.3f}" for a in data.exit_accuracy)
        print(
            f"{name:{width}s}  {data.n_exits} exits, {data.n_classes} classes, "
            f"{data.n_samples} test samples; per-exit accuracy {accuracy}"
        )


def _comparison_arguments(p: argparse.ArgumentParser, default_fractions: str | None = None) -> None:
    """Options of compare, report and benchmark: budgets as shares, splits, the test."""
    p.add_argument(
        "--cost-fractions",
        default=default_fractions,
        metavar="F,F,...",
        help="budgets as shares of the final exit's cost, e.g. 0.25,0.5,0.75,1"
        + (f" (default {default_fractions})" if default_fractions else ""),
    )
    p.add_argument(
        "--splits",
        type=int,
        default=1,
        help="calibration/test splits (default 1: the given split; more pools the samples "
        "and re-splits them at random)",
    )
    p.add_argument(
        "--calibration-size",
        metavar="N",
        help="samples that calibrate in each re-split: a count, or a share such as 0.5 "
        "(default: the validation split's size, or half of a single file)",
    )
    p.add_argument(
        "--reference",
        default="final-exit",
        help="method every other is tested against (paired bootstrap; default final-exit)",
    )
    p.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="fits in parallel (joblib; -1 for every core; default 1)",
    )
    p.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seeds the splits, every fit (eenet) and the bootstrap (default 0)",
    )


def _add_comparison_parsers(sub: Any, data_help: str, common: Any) -> None:
    """The compare, report and benchmark subcommands."""
    for name, helptext, run in (
        ("compare", "fit methods on validation data, evaluate on test data", _cmd_compare),
        ("report", "write a self-contained HTML report", _cmd_report),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("data", metavar="DATA", help=data_help)
        p.add_argument(
            "--test",
            help="a separate test .npz (else DATA's test split, or a random half of a single .npz)",
        )
        p.add_argument("--methods", help="comma-separated, default all")
        p.add_argument("--budgets", help="comma-separated mean-cost budgets (in DATA's cost units)")
        p.add_argument(
            "--n-budgets",
            type=int,
            default=5,
            help="evenly spaced budgets when neither --budgets nor --cost-fractions is given "
            "(default 5)",
        )
        _comparison_arguments(p)
        if name == "compare":
            p.add_argument("-o", "--output", help="figure of the test fronts (.pdf, .svg, .png)")
            p.add_argument(
                "--table",
                action="append",
                metavar="FILE",
                help="write the table: .csv (one row per run), .md or .tex (methods by "
                "budgets, best in bold); repeatable",
            )
        else:
            p.add_argument("-o", "--output", required=True, metavar="DIR")
        common(p)
        p.set_defaults(run=run)

    p = sub.add_parser(
        "benchmark",
        help="compare methods on many caches over repeated splits: CSV, tables and figures",
    )
    p.add_argument(
        "data",
        metavar="DATA",
        nargs="+",
        help=data_help + "; an .npz is pooled and re-split, the others are (val, test) pairs",
    )
    p.add_argument("--methods", help="comma-separated, default all")
    _comparison_arguments(p, default_fractions="0.25,0.5,0.75,1")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="writes runs.csv (one row per run), summary.csv, and per dataset "
        "NAME-accuracy.md/.tex, NAME-speedup.md/.tex and NAME-comparison.svg",
    )
    common(p)
    p.set_defaults(run=_cmd_benchmark)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eeopt",
        description="Choose, check and explain early-exit policies from cached exit outputs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "an eeopt .npz, an MSDNet-family logits_single.pth, or a shipped dataset name"

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--costs", help="cumulative costs per exit: flops.pth or a one-column CSV")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("fit", help="fit a policy and save it as JSON")
    p.add_argument("data", metavar="DATA", help=data_help + " (its validation split)")
    p.add_argument("--method", required=True)
    p.add_argument("--budget", type=float)
    p.add_argument("--target")
    p.add_argument("--tolerance", type=float)
    p.add_argument("--threshold", type=float)
    p.add_argument("--patience", type=int)
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method option, e.g. --option reset=zero (values parsed as JSON)",
    )
    p.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed of the methods that draw random numbers (eenet)",
    )
    p.add_argument("-o", "--output", default="policy.json")
    common(p)
    p.set_defaults(run=_cmd_fit)

    p = sub.add_parser("evaluate", help="evaluate a saved policy")
    p.add_argument("policy", metavar="POLICY")
    p.add_argument("data", metavar="DATA", help=data_help + " (its test split)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for intervals")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(run=_cmd_evaluate)

    _add_comparison_parsers(sub, data_help, common)

    p = sub.add_parser("datasets", help="list the shipped datasets")
    p.set_defaults(run=_cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, ImportError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"eeopt: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eeopt: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
