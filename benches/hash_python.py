"""The Python baseline for `make bench` (benches/hashing.rs): what a
researcher would otherwise write — hashlib MD5 plus imagehash's pHash on
Pillow, over the same files. Prints `images_per_s N` for one pass.

Usage: python3 hash_python.py FILELIST [processes]
"""
import hashlib
import sys
import time
from multiprocessing import Pool

import imagehash
from PIL import Image


def one(path):
    with open(path, "rb") as f:
        data = f.read()
    md5 = hashlib.md5(data).hexdigest()
    with Image.open(path) as im:
        ph = str(imagehash.phash(im))
    return md5, ph


def main():
    files = open(sys.argv[1]).read().split("\n")
    files = [f for f in files if f]
    procs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    t0 = time.perf_counter()
    if procs == 1:
        out = [one(f) for f in files]
    else:
        with Pool(procs) as pool:
            out = pool.map(one, files, chunksize=8)
    dt = time.perf_counter() - t0
    assert len(out) == len(files)
    print(f"images_per_s {len(files) / dt:.1f}")


if __name__ == "__main__":
    main()
