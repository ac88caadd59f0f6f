"""The ``eeopt`` command line: fit, evaluate, compare, report, datasets.

``DATA`` is a shipped dataset's name, a cache (``.npz`` with ``probs``/``logits`` or
``predictions`` + ``confidence``, or a folder of ``.npy``), a table of per-exit predictions
(``.csv``/``.parquet``) or an MSDNet-family cache (``logits_single.pth``): see
:mod:`eeopt.sources`. Outputs are checked before any work. Bad input gives one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eeopt import sources
from eeopt.data import ExitData


class CLIError(Exception):
    """A user-facing error: printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors reported as one line like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{self.prog}: {message} (see {self.prog} --help)")


def _shipped_names() -> list[str]:
    return sources.shipped_names()


def load_splits(
    spec: str,
    *,
    costs: str | None = None,
    test: str | None = None,
    random_state: int = 0,
    input: str = "auto",
) -> tuple[ExitData, ExitData]:
    """(validation, test) of ``spec`` (:func:`eeopt.sources.load_pair`), with a note on
    stderr when the data carry no costs."""
    val, test_data = sources.load_pair(
        spec, costs=costs, test=test, input=input, random_state=random_state
    )
    sources.note_missing_costs(val, spec)
    return val, test_data


def load_one(spec: str, split: str, *, costs: str | None = None, input: str = "auto") -> ExitData:
    """One split of ``spec`` (:func:`eeopt.sources.load`), with a note when it has no costs."""
    data = sources.load(spec, split, costs=costs, input=input)
    sources.note_missing_costs(data, spec)
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
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(f"{name} must be comma-separated numbers, got {text!r}.") from None
    if not values:
        raise CLIError(f"{name} is empty; give comma-separated numbers, e.g. 0.25,0.5.")
    return values


def _cmd_fit(args: argparse.Namespace) -> None:
    import eeopt

    output = sources.check_output_file(args.output, "-o/--output", force=args.force)
    data = load_one(args.data, "val", costs=args.costs, input=args.input)
    options = _options(args.option)
    for key in ("budget", "target", "tolerance", *_direct_names()):
        value = getattr(args, key)
        if value is not None:
            if key in options:
                raise CLIError(f"--{key} and --option {key}=...: give it once.")
            options[key] = value
    certified = {
        "delta": args.delta,
        "risk": args.risk,
        "bound": args.bound,
        "guarantee": args.guarantee,
        "calibration_split": args.calibration_split,
        "grid": args.grid,
    }
    flags = {key: f"--{key.replace('_', '-')}" for key in (*certified, "random_state")}
    for key, flag in {**flags, "verbose": "-q/--quiet"}.items():
        if key in options:  # every fit argument has its own flag
            raise CLIError(f"--option {key}=...: use {flag} instead.")
    policy = eeopt.fit(
        data,
        method=args.method,
        verbose=not args.quiet,
        random_state=args.random_state,
        **certified,
        **options,
    )
    policy.save(output)
    result = policy.evaluate(data)
    accuracy = "n/a (no labels)" if result.accuracy is None else f"{result.accuracy:.4f}"
    print(
        f"fitted {args.method} on {data.n_samples} samples: accuracy {accuracy}, "
        f"mean cost {result.mean_cost:.6g}, speedup {result.speedup:.3f}x"
    )
    if policy.guarantee_ is not None:
        print(policy.guarantee_["statement"])
    print(f"wrote {output}")


def _direct_names() -> list[str]:
    """Every registered method's direct settings (``threshold``, ``patience``, ``q``, ...),
    each a flag of ``eeopt fit``, from the registry."""
    from eeopt.methods import METHODS

    return sorted({d.name for spec in METHODS.values() for d in spec.direct})


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import eeopt

    if not Path(args.policy).is_file():
        raise CLIError(f"POLICY {args.policy!r} does not exist (or is not a file).")
    if Path(args.policy).suffix in sources.SUFFIXES:
        raise CLIError(
            f"POLICY {args.policy!r} looks like data; the order is: eeopt evaluate POLICY DATA."
        )
    policy = eeopt.load_policy(args.policy)
    data = load_one(args.data, "test", costs=args.costs, input=args.input)
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
    return np.linspace(val.costs[0], val.costs[-1], args.n_budgets + 2)[1:-1]


def _methods(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from eeopt.methods import method_spec

    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        try:
            method_spec(name)
        except ValueError as exc:
            raise CLIError(f"--methods: {exc}") from None
    return names


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
        sources.check_output_file(path, "--table", force=args.force)
    if args.output:
        sources.check_output_file(args.output, "-o/--output", force=args.force)
    methods = _methods(args.methods)
    val, test = _pair(args)
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

    sources.check_output_folder(args.output, "-o/--output")
    if args.delta is not None and not 0 < args.delta < 1:  # before the comparison runs
        raise CLIError(f"--delta must lie in (0, 1), got {args.delta:g}.")
    methods = _methods(args.methods)
    val, test = _pair(args)
    table = eeopt.compare(val, test, methods, **_compare_options(args, val))
    print(table)
    path = write_report(
        val,
        test,
        args.output,
        table=table,
        random_state=args.random_state,
        command=_command_line(args),
        guarantee={"tolerance": args.tolerance, "delta": args.delta} if args.delta else {},
        verbose=not args.quiet,
    )
    print(f"wrote {path}")


def _pair(args: argparse.Namespace) -> tuple[ExitData, ExitData]:
    return load_splits(
        args.data,
        costs=args.costs,
        test=args.test,
        random_state=args.random_state,
        input=args.input,
    )


def _command_line(args: argparse.Namespace) -> str:
    """The ``eeopt report`` command as given (for the report's footer)."""
    words = ["eeopt", "report", args.data]
    for flag, value in (
        ("--test", args.test),
        ("--costs", args.costs),
        ("--input", args.input if args.input != "auto" else None),
        ("--methods", args.methods),
        ("--budgets", args.budgets),
        ("--cost-fractions", args.cost_fractions),
        ("--n-budgets", args.n_budgets if args.n_budgets != 5 else None),
        ("--splits", args.splits if args.splits != 1 else None),
        ("--calibration-size", args.calibration_size),
        ("--reference", args.reference if args.reference != "final-exit" else None),
        ("--random-state", args.random_state or None),
        ("--tolerance", args.tolerance if args.tolerance != 0.01 else None),
        ("--delta", args.delta if args.delta != 0.1 else None),
        ("-o", args.output),
    ):
        if value is not None:
            words += [flag, str(value)]
    return " ".join(words)


def _benchmark_sources(specs: list[str], costs: str | None, input: str) -> dict[str, Any]:
    """name -> one ExitData (a file or folder: pooled and re-split) or a (val, test) pair (a
    shipped dataset, an MSDNet cache)."""
    found: dict[str, Any] = {}
    for spec in specs:
        path = Path(spec)
        # A cache is named by its folder (every MSDNet-family cache is logits_single.pth).
        name = path.parent.name if path.suffix == ".pth" else path.stem if path.suffix else spec
        if name in found:
            raise CLIError(f"DATA {spec!r}: two inputs are named {name!r}; rename one file.")
        if path.exists() and path.suffix != ".pth":
            found[name] = load_one(spec, "val", costs=costs, input=input)
        else:
            found[name] = load_splits(spec, costs=costs, input=input)
    return found


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from eeopt.compare import compare_many

    out = sources.check_output_folder(args.output, "-o/--output")
    found = _benchmark_sources(args.data, args.costs, args.input)
    table = compare_many(found, _methods(args.methods), **_compare_options(args, None))
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


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _whole_number(1)
_count = _whole_number(0)


def _method_help() -> str:
    from eeopt.methods import METHODS

    return "; ".join(f"{name}: {spec.summary}" for name, spec in sorted(METHODS.items()))


_DATA_HELP = (
    "a shipped dataset name (eeopt datasets), a cache (.npz with probs or logits, or "
    "predictions and confidence; or a folder of .npy files), a table of per-exit predictions "
    "(.csv/.parquet) or an MSDNet-family logits_single.pth"
)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--costs",
        help="cumulative cost per exit: flops.pth or a one-column CSV (one number a line); "
        "applies to shipped datasets too. Default: the data's own, else 1..n_exits (with a note)",
    )
    p.add_argument(
        "--input",
        choices=("auto", "logits", "probs"),
        default="auto",
        help="how to read a cache's probs array: auto (probabilities if rows sum to 1, else "
        "softmax), logits, or probs (checked). Default: auto",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _fit_parser(sub: Any) -> None:
    from eeopt.methods import method_names

    p = sub.add_parser("fit", help="fit a policy and save it as JSON")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP + " (its validation split)")
    p.add_argument(
        "--method",
        required=True,
        choices=method_names(),
        metavar="METHOD",
        help="one of: " + _method_help(),
    )
    p.add_argument("--budget", type=float, help="mean cost per sample to stay within")
    p.add_argument(
        "--target", help="accuracy (keep the final exit's accuracy) or BEEM's exit-error"
    )
    p.add_argument(
        "--tolerance", type=float, help="accuracy the target may lose, a share (0.01 = 1 point)"
    )
    for name in _direct_names():
        p.add_argument(
            f"--{name}",
            type=_parse_value,
            metavar="VALUE",
            help=f"direct setting {name}= of the methods that take it (see the docs); a number "
            f"or a JSON list",
        )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method option, e.g. --option reset=zero (values parsed as JSON); repeatable",
    )
    p.add_argument(
        "--delta",
        type=float,
        help="certify the target: with probability >= 1 - delta over DATA, the risk on new data "
        "is at most --tolerance (or the mean cost at most --budget)",
    )
    p.add_argument(
        "--risk",
        choices=("accuracy-gap", "consistency", "error"),
        help="what a certified --tolerance bounds: accuracy-gap (default with labels), "
        "consistency (default without; needs no labels) or error",
    )
    p.add_argument(
        "--bound",
        choices=("hb", "binomial", "wsr"),
        help="concentration bound of the certificate (default hb; needs --delta)",
    )
    p.add_argument(
        "--guarantee",
        choices=("probability", "expectation"),
        default="probability",
        help="expectation: conformal risk control, a bound on the expected risk (no --delta)",
    )
    p.add_argument(
        "--calibration-split",
        type=float,
        help="share of DATA that builds the path of a certified target, the rest testing it "
        "(default 0.5 where the path is built from the data)",
    )
    p.add_argument(
        "--grid",
        type=int,
        help="a certified shared threshold tests N thresholds evenly spaced on [0, 1] only "
        "(RC-EENN's grid: 101); default every threshold that changes a decision",
    )
    p.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed of the methods that draw random numbers (eenet); default 0",
    )
    p.add_argument("-o", "--output", default="policy.json", help="policy file (policy.json)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    _data_options(p)
    p.set_defaults(run=_cmd_fit)


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved policy")
    p.add_argument("policy", metavar="POLICY", help="a policy file written by eeopt fit")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP + " (its test split)")
    p.add_argument(
        "--bootstrap", type=_count, default=0, help="bootstrap resamples for 95%% intervals"
    )
    p.add_argument("--random-state", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _data_options(p)
    p.set_defaults(run=_cmd_evaluate)


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
        type=_positive_int,
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


def _add_comparison_parsers(sub: Any) -> None:
    """The compare, report and benchmark subcommands."""
    for name, helptext, run in (
        ("compare", "fit methods on validation data, evaluate on test data", _cmd_compare),
        ("report", "write a self-contained HTML report", _cmd_report),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("data", metavar="DATA", help=_DATA_HELP)
        p.add_argument(
            "--test",
            help="a separate test file (else DATA's test split, or a random half of one file)",
        )
        p.add_argument("--methods", help="comma-separated method names, default all")
        p.add_argument("--budgets", help="comma-separated mean-cost budgets (in DATA's cost units)")
        p.add_argument(
            "--n-budgets",
            type=_positive_int,
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
            p.add_argument("--force", action="store_true", help="replace existing output files")
        else:
            p.add_argument(
                "-o", "--output", required=True, metavar="DIR", help="folder of the report"
            )
            p.add_argument(
                "--tolerance",
                type=float,
                default=0.01,
                help="the Guarantee section certifies an accuracy gap of at most this on new "
                "data (default 0.01)",
            )
            p.add_argument(
                "--delta",
                type=float,
                default=0.1,
                help="...with probability at least 1 - delta (default 0.1; 0 leaves the "
                "section out)",
            )
        _data_options(p)
        p.set_defaults(run=run)

    p = sub.add_parser(
        "benchmark",
        help="compare methods on many caches over repeated splits: CSV, tables and figures",
    )
    p.add_argument(
        "data",
        metavar="DATA",
        nargs="+",
        help=_DATA_HELP + "; a file or folder is pooled and re-split, a shipped name or an "
        "MSDNet cache is a (val, test) pair",
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
    _data_options(p)
    p.set_defaults(run=_cmd_benchmark)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eeopt",
        description="Choose, check and explain early-exit policies from cached exit outputs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _fit_parser(sub)
    _evaluate_parser(sub)
    _add_comparison_parsers(sub)
    p = sub.add_parser("datasets", help="list the shipped datasets")
    p.set_defaults(run=_cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except (CLIError, ValueError, TypeError, ImportError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"eeopt: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eeopt: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
