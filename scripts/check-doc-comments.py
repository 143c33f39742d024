#!/usr/bin/env python3
"""Lists public declarations in Sources/ that have no `///` doc comment above them."""
import pathlib
import re
import sys

DECLARATION = re.compile(
    r"^\s*(@\w+(\([^)]*\))?\s+)*(public|open)\s+(static\s+|final\s+|convenience\s+|override\s+|mutating\s+|nonisolated\s+)*"
    r"(func|var|let|init|struct|class|enum|protocol|typealias|case|subscript|actor|extension)\b"
)
missing = []
for path in sorted(pathlib.Path("Sources").rglob("*.swift")):
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if not DECLARATION.match(line) or re.match(r"^\s*public\s+(extension)\b", line):
            continue
        previous = index - 1
        while previous >= 0 and (lines[previous].strip().startswith("@") or lines[previous].strip() == ""):
            if lines[previous].strip() == "":
                break
            previous -= 1
        if previous < 0 or not (lines[previous].strip().startswith("///") or lines[previous].strip().endswith("*/")):
            missing.append(f"{path}:{index + 1}: {line.strip()}")
print("\n".join(missing) if missing else "every public declaration has a doc comment")
sys.exit(1 if missing else 0)
