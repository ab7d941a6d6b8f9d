"""Exports scikit-learn's copy of the UCI optical digits (8x8, 1,797 samples) to demo/data/digits.json.

Run once with Debian's python: /usr/bin/python3 demo/export_digits.py
"""
import json
import pathlib

from sklearn.datasets import load_digits

digits = load_digits()
out = pathlib.Path(__file__).parent / "data" / "digits.json"
out.write_text(json.dumps({
    "source": "UCI ML optical recognition of handwritten digits, via sklearn.datasets.load_digits",
    "licence": "CC BY 4.0",
    "rows": int(digits.data.shape[0]),
    "cols": int(digits.data.shape[1]),
    # Pixel intensities 0..16, row-major, one string of hex digits per sample (0..g -> 0..16).
    "pixels": ["".join("0123456789abcdefg"[int(v)] for v in row) for row in digits.data],
    "labels": "".join(str(int(t)) for t in digits.target),
}, separators=(",", ":")) + "\n")
print(f"wrote {out} ({out.stat().st_size} bytes)")
