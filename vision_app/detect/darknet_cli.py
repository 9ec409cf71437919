"""`python main.py models import-darknet X.cfg X.weights -o X.onnx`: convert, print the manifest entry,
and with --append-manifest add it to the model folder's own manifest.toml (which ModelStore loads)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vision_app.detect.darknet_manifest import DEFAULT_LICENSE, manifest_entry, read_names
from vision_app.errors import ModelError
from vision_app.models import ModelStore, append_manifest_entry


def register(msub: argparse._SubParsersAction) -> None:
    """Add the ``import-darknet`` action to the ``models`` sub-command."""
    from vision_app.cli import add_common

    q = msub.add_parser("import-darknet", help="convert a darknet .cfg/.weights pair to ONNX and print its "
                        "manifest entry (anchors and strides read from the cfg)")
    add_common(q)
    q.add_argument("cfg", help="darknet network description (.cfg)")
    q.add_argument("weights", help="darknet weights (.weights)")
    q.add_argument("-o", "--output", required=True, help="ONNX file to write")
    q.add_argument("--name", help="model name in the manifest (default: the cfg's file name without .cfg)")
    q.add_argument("--names", metavar="FILE", help="class names, one per line (default: COCO for 80 classes)")
    q.add_argument("--license", default=DEFAULT_LICENSE, help=f"license text for the entry "
                   f"(default: {DEFAULT_LICENSE!r})")
    q.add_argument("--append-manifest", action="store_true", help="also append the entry to "
                   "<model folder>/manifest.toml (the ONNX must then be written inside the model folder)")
    q.set_defaults(func=cmd_import_darknet)


def _model_store(args: argparse.Namespace) -> ModelStore | None:
    """The model folder's store; required with --append-manifest, optional otherwise."""
    try:
        store = ModelStore.open(args.models)
    except ModelError:
        if args.append_manifest:
            raise
        return None  # printing the entry needs no model folder
    if store.root_is_bundled:  # the package's own folder is not the user's to write into
        if args.append_manifest:
            raise ModelError("--append-manifest needs a model folder of your own: pass --models DIR or set "
                             "VISION_APP_MODELS (the bundled models' folder belongs to the installed package)")
        return None
    return store


def cmd_import_darknet(args: argparse.Namespace) -> int:
    output = Path(args.output).expanduser().resolve()
    name = args.name or Path(args.cfg).stem
    names = read_names(args.names) if args.names else None
    store = _model_store(args)
    inside = store is not None and output.is_relative_to(store.root)
    # all checks come before converting, so a refused import leaves nothing half-done
    if args.append_manifest and store is not None:
        if name in store.entries:
            raise ModelError(f"a model named '{name}' is already in the manifest "
                             f"({store.entries[name].file}); choose another --name")
        if not inside:
            raise ModelError(f"--append-manifest needs the ONNX inside the model folder {store.root}, but "
                             f"-o is {output}; write it to e.g. {store.root / 'detection' / output.name}")
    if store is not None:
        for other, e in store.entries.items():
            if (store.root / e.file).resolve() == output:
                raise ModelError(f"{output} is the file of model '{other}'; converting over it would break "
                                 f"that entry, write to another -o path")
    from vision_app.detect.darknet import convert_darknet  # onnx only when converting, not at CLI start

    model, sha = convert_darknet(args.cfg, args.weights, output)
    file = output.relative_to(store.root).as_posix() if store is not None and inside else str(output)
    entry = manifest_entry(name, file, sha, model, args.license, names, names_origin=str(args.names))
    print(f"# wrote {output}")
    print(entry, end="")
    if args.append_manifest and store is not None:
        append_manifest_entry(store.root / "manifest.toml", name, entry)
        print(f"# appended to {store.root / 'manifest.toml'}", file=sys.stderr)
    elif not inside:
        print("# the ONNX is outside the model folder: copy it there and make 'file' relative to it",
              file=sys.stderr)
    return 0
