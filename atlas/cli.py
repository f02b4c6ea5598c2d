"""The ``atlas`` command: build, layers, plugins, spectrum, cache, serve."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from .errors import AtlasError
from .recipe import BACKENDS

EXIT_FAILED_UNITS = 1
EXIT_INTERRUPTED = 2
MAX_FAILURES_SHOWN = 10


def _registry():
    """Load plugins and report the broken ones on stderr."""
    from .registry import load_registry

    registry = load_registry()
    for info in registry.errors:
        click.echo(
            f"warning: plugin {info.name!r} ({info.module}) failed to load: {info.error}", err=True
        )
    return registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="feature-atlas")
def cli() -> None:
    """Visualize every channel of a network's layers as a browsable static atlas."""


@cli.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the atlas (default: the recipe's output.dir or site/NAME).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Result cache (default: $ATLAS_CACHE_DIR or ~/.cache/feature-atlas).",
)
@click.option(
    "--weights",
    help="Weights to use instead of the recipe's model.weights: a name "
    "such as DEFAULT or a local file.",
)
@click.option(
    "--device",
    help="Device to optimise on: auto, cpu, cuda, cuda:1 ... (cuda with --jobs N: worker i "
    "on cuda:i).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    help="The model's dtype while optimising: auto (bf16 where the device has bf16 units, "
    "else fp32), fp32, bf16.",
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Where jobs run: loky processes (default), threads, in order, or a Dask cluster.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="A running Dask scheduler (tcp://HOST:PORT) to build on; implies --backend dask.",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Channels optimised at once.")
@click.option(
    "--templates",
    "template_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of templates that override the built-in ones (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and what is cached; compute nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def build(
    recipe,
    out_dir,
    cache_dir,
    weights,
    device,
    precision,
    jobs,
    backend,
    scheduler,
    batch_size,
    template_dirs,
    dry_run,
    as_json,
    quiet,
) -> None:
    """Build the atlas of RECIPE (a TOML file); without one, the embedded demo."""
    from .bars import Bars
    from .models.sources.common import random_weights_note
    from .pipeline.build import dry_run as dry_run_summary
    from .pipeline.build import plan_build, run_build
    from .recipe import load_recipe
    from .store.cache import Cache, default_cache_dir

    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    parsed = load_recipe(recipe)
    if scheduler and backend not in (None, "dask"):
        raise click.UsageError("--scheduler goes with --backend dask")
    overrides = {
        "weights": weights,
        "device": device,
        "precision": precision,
        "jobs": jobs,
        "batch_size": batch_size,
        "backend": "dask" if scheduler else backend,
        "scheduler": scheduler,
    }
    parsed = replace(parsed, **{k: v for k, v in overrides.items() if v is not None})
    registry = _registry()
    if dry_run:
        cache = Cache(cache_dir or default_cache_dir())
        _print_plan(dry_run_summary(plan_build(parsed, cache, registry), cache, registry), as_json)
        return
    with Bars(not quiet) as bars:
        result = run_build(
            parsed, cache_dir, out_dir, registry, template_dirs=template_dirs, progress=bars
        )
    cached = result.plan.cached_images
    if result.manifest["model"]["random_weights"] and parsed.weights is None:
        click.echo(f"note: {random_weights_note(result.manifest['model']['source'])}", err=True)
    if result.computed == 0 and not result.failed:
        click.echo(f"all {cached} pictures came from the cache; nothing computed", err=True)
    else:
        click.echo(f"computed {result.computed} pictures, {cached} from the cache", err=True)
    skipped = (result.manifest.get("dataset") or {}).get("skipped", [])
    if skipped:
        click.echo(
            f"dataset: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}", err=True
        )
    for outcome in result.failed[:MAX_FAILURES_SHOWN]:
        click.echo(f"failed: {outcome.name}: {outcome.error}", err=True)
    if len(result.failed) > MAX_FAILURES_SHOWN:
        more = len(result.failed) - MAX_FAILURES_SHOWN
        click.echo(f"... and {more} more failed; the site marks each of them", err=True)
    click.echo(str(result.index.resolve()))
    if result.failed:
        sys.exit(EXIT_FAILED_UNITS)


def _print_plan(summary: dict, as_json: bool) -> None:
    """Print a plan summary as JSON or as a table."""
    from .models.sources.common import is_random_init, random_weights_note

    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    if is_random_init(summary["weights_digest"]):
        click.echo(f"model {random_weights_note(summary['model'])}")
    else:
        click.echo(f"model {summary['model']} (weights digest {summary['weights_digest'][:12]})")
    for layer in summary["layers"]:
        click.echo(
            f"  {layer['name']:<32} {layer['channels']:>6} channels "
            f"{layer['cached']:>6} cached {layer['to_compute']:>6} to compute"
        )
    if summary.get("pictures_total"):
        click.echo(
            f"  {'composed pictures':<32} {summary['pictures_total']:>6}          "
            f"{summary['pictures_cached']:>6} cached {summary['pictures_to_compute']:>6} to compute"
        )
    dataset = summary.get("dataset")
    if dataset:
        state = (
            "cached"
            if dataset["cached"]
            else f"to compute for {', '.join(dataset['layers_to_compute'])}"
        )
        click.echo(
            f"dataset pass {dataset['source']} ({dataset['samples']} images, "
            f"top {dataset['top_k']}): {state}"
        )
        for analysis in dataset["analyses"]:
            todo = ", ".join(analysis["layers_to_compute"])
            passes = analysis["pass_names"] if analysis["passes"] > 1 else []
            click.echo(
                f"  analysis {analysis['describe']}"
                + (f" ({len(passes)} passes: {', '.join(passes)})" if passes else "")
                + ": "
                + ("cached" if analysis["cached"] else f"to compute for {todo}")
            )
        if dataset["passes"] > 1:
            click.echo(f"  the pass reads the images {dataset['passes']} times")
    connections = summary.get("connections")
    if connections:
        pairs = ", ".join(
            f"{p['from']} -> {p['layer']} ({'cached' if p['cached'] else 'to compute'})"
            for p in connections["pairs"]
        )
        click.echo(f"connections by {connections['method']}: {pairs or 'none'}")
    for name, shown in (summary.get("activation_atlas") or {}).items():
        size = f"{shown['grid']}x{shown['grid']} grid, {shown['layout']['points']} points"
        if not shown["laid_out"]:
            state = "to sample and lay out (UMAP), then its cells to draw"
        else:
            state = f"{shown['cells']} cells: {shown['cells_cached']} cached, "
            state += f"{shown['cells_to_compute']} to compute"
        click.echo(f"activation atlas of {name} ({size}): {state}")
    click.echo(
        f"{summary['units_total']} pictures: {summary['units_cached']} cached, "
        f"{summary['units_to_compute']} to compute"
    )
    guess = summary.get("estimate")
    if guess:
        click.echo(
            f"estimated time: about {_duration(guess['seconds'])} to optimise "
            f"{guess['pictures']} pictures on {guess['device']} (measured: "
            f"{guess['timed_steps']} timed steps of each of {guess['kinds_timed']} kinds of "
            "batch in this process; the dataset pass and worker start-up not included)"
        )


def _duration(seconds: float) -> str:
    """Say a duration the way people read it: 45 s, 3 min 20 s, 2 h 05 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@cli.command()
@click.argument("model")
@click.option("--weights", help="Weights name or file, as in a recipe's model.weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list layers that cannot be selected.")
def layers(model, weights, as_json, show_all) -> None:
    """List the selectable layers of MODEL with output shapes and channel counts."""
    from .models.layers import catalogue

    adapter = _registry().load_model(model, weights)
    found = [layer for layer in catalogue(adapter) if show_all or layer.supported]
    if as_json:
        click.echo(json.dumps([layer.as_dict() for layer in found], indent=2))
        return
    click.echo(f"{'layer':<40} {'type':<24} {'output shape':<18} {'channels':>8}")
    for layer in found:
        shape = "×".join(map(str, layer.shape))
        note = f"  ({layer.reason})" if not layer.supported else ""
        if layer.tokens:
            note = f"  (tokens: {layer.tokens})"
        elif layer.supported and layer.gridless:
            note = "  (tokens, patch grid unknown: a channel is the mean over all tokens)"
        click.echo(f"{layer.name:<40} {layer.kind:<24} {shape:<18} {layer.channels:>8}{note}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json) -> None:
    """List installed plugins and what each registered."""
    registry = _registry()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in registry.plugins], indent=2))
        return
    for info in registry.plugins:
        origin = f" [{info.distribution}]" if info.distribution else ""
        click.echo(f"{info.name}{origin}: {info.module}")
        if info.error:
            click.echo(f"  failed to load: {info.error}")
        for kind, names in sorted(info.registered.items()):
            click.echo(f"  {kind}: {', '.join(names)}")


@cli.command()
@click.argument("source")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .npy file to write (use it as render.spectrum with param = 'maco').",
)
@click.option(
    "--size",
    type=click.IntRange(min=8, max=2048),
    default=128,
    show_default=True,
    help="Side of the square the images are resized and centre-cropped to.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="How many images of a data set source to measure (a folder: all of them).",
)
def spectrum(source, out, size, samples) -> None:
    """Measure the mean Fourier magnitude of SOURCE's images, for MACO: a folder of images,
    or a data set source as [dataset] names one (e.g. shapes/val, folder:DIR)."""
    from .datasets.spectrum import dataset_images, write_spectrum

    if Path(source).is_dir() or source.startswith((".", "/", "~")):  # a folder, or meant as one
        written = write_spectrum(Path(source).expanduser(), out, size)
    else:
        dataset = _registry().load_dataset(source, base_dir=Path.cwd())
        written = write_spectrum(None, out, size, dataset_images(dataset, samples))
    click.echo(str(written.resolve()))


@cli.group()
def cache() -> None:
    """Look at a result cache and keep it in bounds."""


CACHE_DIR = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The cache (default: $ATLAS_CACHE_DIR or ~/.cache/feature-atlas).",
)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@cache.command("info")
@CACHE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_info(cache_dir, as_json) -> None:
    """Print how many pictures and dataset examples the cache holds, and for which models."""
    from .store.cache import default_cache_dir
    from .store.maintenance import info

    found = info(cache_dir or default_cache_dir())
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(
        f"{found['root']}: {found['pictures']} pictures, {found['examples']} layers of "
        f"dataset examples, {found['analyses']} layer findings of analyses, "
        f"{_megabytes(found['bytes'])}"
    )
    for model, row in sorted(found["models"].items()):
        click.echo(
            f"  {model:<48} {row['pictures']:>7} pictures {row['examples']:>4} examples "
            f"{_megabytes(row['bytes']):>10}"
        )


@cache.command("prune")
@CACHE_DIR
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Remove what no build has written or read for DAYS days.",
)
@click.option(
    "--keep",
    "keep",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Remove everything these recipes do not use (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def cache_prune(cache_dir, older_than, keep, dry_run) -> None:
    """Remove old entries, or every entry the given recipes do not use."""
    from .pipeline.build import plan_build
    from .recipe import load_recipe
    from .store.cache import Cache, default_cache_dir
    from .store.maintenance import prune

    if older_than is None and not keep:
        raise click.UsageError("say what to remove: --older-than DAYS and/or --keep RECIPE")
    root = cache_dir or default_cache_dir()
    kept = None
    if keep:
        registry, kept = _registry(), set()
        for path in keep:
            kept |= plan_build(load_recipe(path), Cache(root), registry).all_keys()
    removed = prune(root, older_than, kept, dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {removed['pictures']} pictures and {removed['examples']} layers of dataset "
        f"examples, {removed['analyses']} analysis findings, {_megabytes(removed['bytes'])}"
    )


@cli.command()
@click.argument("site", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0: any free one).",
)
@click.option(
    "--base",
    default="/",
    show_default=True,
    help="Serve the site under this path, as a host that puts it in a sub-folder.",
)
def serve(site, port, base) -> None:
    """Preview a built atlas in a browser, from a local server on 127.0.0.1."""
    from .site.serve import make_server, url

    server = make_server(site, port, base)
    click.echo(f"serving {site} at {url(server, base)} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line and exit with code 4."""
    try:
        cli.main(args=argv, prog_name="atlas", standalone_mode=False)
    except AtlasError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted; finished pictures are kept in the cache", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted; finished pictures are kept in the cache", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(4)
