"""Profile one value: how long it is and a normalized copy (JSON in on stdin, JSON out)."""

import json
import sys

data = json.load(sys.stdin)
value = data.get("data", "")
text = value if isinstance(value, str) else json.dumps(value)
print(
    json.dumps(
        {
            "length": len(text),
            "words": len(text.split()),
            "lines": len(text.splitlines()) or (1 if text else 0),
            "normalized": " ".join(text.lower().split()),
        }
    )
)
