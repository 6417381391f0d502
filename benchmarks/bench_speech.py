"""What a person hears: a whole simulated routine through the real page, with a voice that takes
real time (tests/speech_in_page.py: the stand-in for ``speechSynthesis``, the run, the figures).

Prints, in simulated seconds, over the routine's active time (issue 17 item 2's limits in
brackets): the share of active time the voice talks (<= 1/3), sentences per active minute
(<= 6), sentences cut (except by a safety or slow-down sentence: 0), decided sentences never
said (0), sentences starting more than 3 s after they were decided (0), sentences said a third
time within 60 s (0), chimes over speech (0), steps whose position or caution was not heard in
full (none), sentences with brackets (none).

    .venv/bin/python benchmarks/bench_speech.py [--seed 2] [--speedup 4] [--words-per-s 2.6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

# by its path: a dependency installs a package called ``tests`` into the venv
_HARNESS = Path(__file__).resolve().parents[1] / "tests" / "speech_in_page.py"
_spec = importlib.util.spec_from_file_location("speech_in_page", _HARNESS)
assert _spec is not None and _spec.loader is not None
harness = sys.modules["speech_in_page"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--speedup", type=float, default=4.0)
    parser.add_argument("--words-per-s", type=float, default=2.6)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    routine, heard = harness.run_with_server(args.seed, args.duration_s, args.speedup,
                                             args.words_per_s)
    f = harness.analyse(routine, heard)
    if args.json:
        print(json.dumps(f, indent=1))
        return 0
    print(f"speech over a simulated routine (seed {args.seed}, {f['active_min']:.2f} active "
          f"min, x{args.speedup:g} speed, voice {args.words_per_s:g} words/s):")
    print(f"  talking {f['talk_s']:.0f} s = {f['talk_share']:.0%} of active time (<= 33 %)")
    print(f"  sentences {f['sentences']} = {f['per_active_min']:.1f} per active minute (<= 6); "
          f"longest {f['longest_sentence_words']} words")
    print(f"  cut {len(f['cut'])}  dropped {len(f['dropped'])}  late (> 3 s) {len(f['late'])}  "
          f"said 3x in 60 s {len(f['said_3x_in_60s'])}  chimes over speech "
          f"{f['chime_overlaps']}")
    print(f"  position not heard in full: {f['position_missing']}; caution: "
          f"{f['caution_missing']}; with brackets: {len(f['bracketed'])}")
    for name in ("cut", "dropped", "late", "said_3x_in_60s", "bracketed"):
        for item in f[name][:3]:
            print(f"    {name}: {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
