"""`python -m fungrad.tour`: runs end to end, prints the seed numbers, writes the
files it names."""
import re
import subprocess
import sys
from pathlib import Path


def test_tour_prints_seed_numbers_and_writes_files(tmp_path):
    out_dir = tmp_path / "tour"
    proc = subprocess.run([sys.executable, "-m", "fungrad.tour", "--out", str(out_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "MISMATCH" not in text
    assert re.search(r"Summary: (\d+) of \1 checks agree", text)
    # the fungrad column starts each line at column 2, PyTorch's column follows
    left = [line[2:].split("  ")[0] for line in text.splitlines() if line.startswith("  ")]
    assert "8.0" in left and "16.0" in left and "19.0" in left
    block = "\n".join(left)
    assert "[[4. 3.]\n [2. 6.]]" in block
    four_two = "[[4. 2. 2. 2. 2.]\n [2. 4. 2. 2. 2.]\n [2. 2. 4. 2. 2.]\n [2. 2. 2. 4. 2.]\n" \
        " [2. 2. 2. 2. 4.]]"
    assert four_two in block
    eight_four = "[[8. 4. 4. 4. 4.]\n [4. 8. 4. 4. 4.]\n [4. 4. 8. 4. 4.]\n [4. 4. 4. 8. 4.]\n" \
        " [4. 4. 4. 4. 8.]]"
    assert eight_four in block
    assert "[[4. 2. 2. 2. 2.]\n [2. 4. 2. 2. 2.]\n [2. 2. 4. 2. 2.]\n [2. 2. 2. 4. 2.]]" in block
    assert "[0.2943 0.0432 0.3046]" in text
    written = re.findall(r"^  wrote (.+)$", text, flags=re.M)
    assert len(written) == 4
    for path in written:
        assert Path(path).exists() and Path(path).stat().st_size > 0
        assert Path(path).parent == out_dir
    assert any(p.endswith((".svg", ".dot")) and "loss_grad" in p for p in written)
