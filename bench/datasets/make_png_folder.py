#!/usr/bin/env python3
"""Writes an IDX dataset (MNIST's format) as an image folder of PNG files,
torchvision ImageFolder layout, zipped or as a plain folder:

    train/<class>/<n>.png   test/<class>/<n>.png

Used by the upload benchmark (`bench/datasets/upload.sh`) and the README's
"Your own data" example. Pure standard library: PNGs are written by hand
(8-bit greyscale, one zlib stream), so nothing needs installing.

    python3 bench/datasets/make_png_folder.py ../shared/datasets/fashion-mnist \
        /tmp/fashion-png.zip [--limit N] [--classes "T-shirt,Trouser,..."]
"""

import argparse
import gzip
import os
import struct
import sys
import zipfile
import zlib

FASHION = [
    "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot",
]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def png(width, height, pixels):
    """An 8-bit greyscale PNG of `pixels` (row-major bytes)."""
    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("idx_dir", help="folder with the four *-ubyte.gz files")
    parser.add_argument("out", help="a .zip file, or a folder to write the PNGs into")
    parser.add_argument("--limit", type=int, default=0,
                        help="at most this many images per split (0: all)")
    parser.add_argument("--classes", default=",".join(FASHION),
                        help="comma-separated class folder names, in label order")
    args = parser.parse_args()
    classes = args.classes.split(",")
    as_zip = args.out.endswith(".zip")
    archive = zipfile.ZipFile(args.out, "w", zipfile.ZIP_STORED) if as_zip else None
    written = 0
    for split, prefix in (("train", "train"), ("test", "t10k")):
        (n, h, w), pixels = read_idx(os.path.join(args.idx_dir, f"{prefix}-images-idx3-ubyte.gz"))
        (_,), labels = read_idx(os.path.join(args.idx_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        if args.limit:
            n = min(n, args.limit)
        for i in range(n):
            name = f"{split}/{classes[labels[i]]}/{i:05d}.png"
            data = png(w, h, pixels[i * h * w:(i + 1) * h * w])
            if archive:
                archive.writestr(name, data)
            else:
                path = os.path.join(args.out, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            written += 1
    if archive:
        archive.close()
    size = os.path.getsize(args.out) if as_zip else 0
    print(f"{written} PNG files -> {args.out}" + (f" ({size / 2**20:.1f} MiB)" if size else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
