"""``python -m reference.capture MODEL.onnx --inputs X.npy --out DIR``: a model's layers as problem files."""

from __future__ import annotations

import argparse
import sys

from . import capture


def main(argv=None) -> int:
    """Parse the command line, capture, print one line per layer; bad input exits 2 with one line."""
    p = argparse.ArgumentParser(
        prog="python -m reference.capture",
        description="Write one problem file per conv / linear layer of an ONNX model, and DIR/manifest.json "
                    "(python -m reference.compare --model DIR judges them). PyTorch modules: reference.capture."
                    "capture() in Python.")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--inputs", required=True, metavar="X.npy|X.npz", help="calibration inputs, one sample a row")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory")
    p.add_argument("--bits", type=int, default=4, help="fit the paper's grid at this width (default 4)")
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm out of the conv weights")
    p.add_argument("--encodings", metavar="FILE.json", help="AIMET encodings: the grid of every layer")
    p.add_argument("--max-positions", type=int, metavar="M",
                   help="keep at most M output positions (conv) or tokens per layer, seeded sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", nargs="+", metavar="PATTERN", help="only layers whose name matches (fnmatch)")
    args = p.parse_args(argv)
    try:
        man = capture(args.model, args.inputs, args.out, bits=args.bits, fold_bn=not args.no_fold_bn,
                      encodings=args.encodings, max_positions=args.max_positions, seed=args.seed,
                      batch_size=args.batch_size, layers=args.layers)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}", file=sys.stderr)
        return 2
    for e in man["layers"]:
        print(f"{e['file']}: {e['kind']} {e['out']} x {e['fan_in']}"
              f"{', BN folded' if e['folded_bn'] else ''}, {e['samples']} samples"
              f"{'' if e['positions'] is None else ', %d positions' % e['positions']}")
    for s in man["skipped"]:
        print(f"skipped {s['name']}: {s['reason']}")
    print(f"wrote {len(man['layers'])} layer files and {args.out}/manifest.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
