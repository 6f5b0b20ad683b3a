"""Rewrite the README's configuration table from collector/settings.py SETTINGS (run after adding a setting)."""

import json
import re
from pathlib import Path

from collector.settings import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- settings-table: generated from collector/settings.py; tests/test_settings.py checks it -->"
END = "<!-- /settings-table -->"

rows = ["| section | key | default | what |", "| --- | --- | --- | --- |"]
rows += [f"| `{s}` | `{k}` | `{json.dumps(d)}` | {h} |" for s, k, d, h in SETTINGS]
text = README.read_text()
if END not in text:  # first run: the table runs to the next blank line
    text = re.sub(re.escape(START) + r"\n(\|.*\n)+", START + "\n" + END + "\n", text)
text = re.sub(re.escape(START) + r".*?" + re.escape(END), START + "\n" + "\n".join(rows) + "\n" + END, text,
              flags=re.S)
README.write_text(text)
print(f"{README}: {len(SETTINGS)} settings")
