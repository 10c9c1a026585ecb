"""`make calibrate DESIGN=<name>`: measure one design of the miniature (`paperlib.studies.calibration.DESIGNS`) and
record it in benchmarks/calibration.json; `--render` writes tables/00_calibration.{csv,md,tex} from the record.

A design is judged only by the calibration statistics (original vs retain model against the published
Llama-2 forget05 pair in ../shared/data) and the baselines GA, GD, NPO, SimNPO, DPO, TPO on notebook 01's
grid: never PALU or a claim. The record keeps every design tried, in order, with its minutes.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from paperlib.engine.errors import PaperlibError
    from paperlib.studies import calibration

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("design", nargs="?", help=f"one of: {', '.join(d.name for d in calibration.DESIGNS)}")
    ap.add_argument("--no-sweep", action="store_true", help="statistics only (no baseline sweep)")
    ap.add_argument("--render", action="store_true", help="write tables/00_calibration from the record")
    ap.add_argument("--muse", action="store_true", help="a design of mini-MUSE (paperlib.studies.muse_calibration)")
    args = ap.parse_args(argv)
    if args.muse:
        return muse(args.design, not args.no_sweep, args.render)
    record = calibration.load_record()
    if args.design:
        designs = {d.name: d for d in calibration.DESIGNS}
        if args.design not in designs:
            raise PaperlibError(f"design {args.design!r}; allowed: {', '.join(designs)}")
        d = designs[args.design]
        profile = calibration.design_profile(d)
        entry = {"name": d.name, "change": d.change, "knobs": calibration.knob_values(profile),
                 **calibration.measure(profile, sweep=not args.no_sweep)}
        record = _recorded(record, entry, [x.name for x in calibration.DESIGNS], calibration.RECORD)
        real = calibration.real_statistics()
        if real:
            met, total, missed = calibration.targets_met(entry, real)
            print(f"{d.name}: {met}/{total} targets met; missed: {', '.join(missed) or 'none'}")
    if args.render:
        real = calibration.real_statistics()
        if real is None:
            raise PaperlibError("the published logs are not in ../shared/data (set PAPERLIB_SHARED_DATA)")
        calibration.save_record_table(record, real)
    return 0


def _recorded(record: list[dict], entry: dict, order: list[str], path) -> list[dict]:
    """`record` with `entry` replacing its design's earlier measurement, in the designs' order, written to `path`."""
    record = sorted([e for e in record if e["name"] != entry["name"]] + [entry], key=lambda e: order.index(e["name"]))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def muse(name: str | None, sweep: bool, render: bool) -> int:
    """Measure mini-MUSE design `name` into benchmarks/muse_calibration.json; `render`: tables/11_muse_calibration."""
    from paperlib.engine.cache import to_jsonable
    from paperlib.engine.errors import PaperlibError
    from paperlib.studies import muse_calibration as mc

    record, order = mc.load_record(), [d.name for d in mc.DESIGNS]
    if name:
        if name not in order:
            raise PaperlibError(f"MUSE design {name!r}; allowed: {', '.join(order)}")
        d = mc.DESIGNS[order.index(name)]
        entry = {"name": d.name, "change": d.change, "knobs": to_jsonable(dict(d.knobs)), **mc.measure(d, sweep)}
        record = _recorded(record, entry, order, mc.RECORD)
        missed = [t.name for t in mc.targets(entry) if not t.met]
        print(f"{name}: {len(mc.targets(entry)) - len(missed)}/{len(mc.targets(entry))} targets met; missed: "
              f"{', '.join(missed) or 'none'}")
    if render:
        mc.save_record_table(record)
    return 0


if __name__ == "__main__":
    from paperlib.engine.errors import PaperlibError

    try:
        sys.exit(main())
    except PaperlibError as e:
        sys.exit(f"error: {e}")
