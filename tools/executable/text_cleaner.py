"""Clean {"text": ...}: NFC, no control characters, single spaces; optional lowercase."""

import json
import sys
import unicodedata

request = json.load(sys.stdin)
original = str(request.get("text", ""))
text = unicodedata.normalize("NFC", original)
text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
text = " ".join(text.split())
if request.get("lowercase"):
    text = text.lower()
print(json.dumps({"text": text, "removed": len(original) - len(text)}, ensure_ascii=False))
