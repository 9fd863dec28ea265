"""A contact sheet: a few frames of an EXR sequence through every tone-mapping operator.

One row per operator (labelled), columns at evenly spaced frames; each operator runs over the
whole sequence in order, so its temporally smoothed key is the one a video would use.

    python benchmarks/contact_sheet.py out/ -o sheet.png [--columns 4] [--width 320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from hdrvid import tonemap
from hdrvid.exr import read_exr
from hdrvid.source import read_source


def sheet(source: str, columns: int, width: int) -> np.ndarray:
    sequence = read_source(source)
    picks = np.linspace(0, len(sequence.files) - 1, columns).round().astype(int).tolist()
    rows = []
    for operator in tonemap.OPERATORS:
        mapper = tonemap.ToneMapper(tonemap.ToneMapOptions(operator=operator))
        tiles = []
        for i, (path, time) in enumerate(zip(sequence.files, sequence.times)):
            display = mapper(read_exr(path)[0].astype(np.float32), time)
            if i in picks:
                tile = (tonemap.oetf_srgb(display) * 255).round().astype(np.uint8)[..., ::-1]
                height = round(tile.shape[0] * width / tile.shape[1])
                tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA)
                cv2.putText(tile, f"{operator}  frame {i}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX,
                            0.5, (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(tile)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="an hdrvid output folder, an EXR glob or file")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    cv2.imwrite(str(args.output), sheet(args.source, args.columns, args.width))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
