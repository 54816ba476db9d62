"""Count words, characters and sentences of {"text": ...}; list the most frequent words."""

import collections
import json
import re
import sys

data = json.load(sys.stdin)
text = str(data.get("text", ""))
words = re.findall(r"[\w']+", text.lower())
sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
top = int(data.get("top", 5))
print(
    json.dumps(
        {
            "words": len(words),
            "characters": len(text),
            "sentences": len(sentences),
            "top_words": collections.Counter(words).most_common(top),
        }
    )
)
