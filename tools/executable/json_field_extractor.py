"""Follow a dotted path into JSON data; report whether it was found."""

import contextlib
import json
import sys

request = json.load(sys.stdin)
data = request.get("data")
if isinstance(data, str):
    with contextlib.suppress(json.JSONDecodeError):
        data = json.loads(data)
value, found = data, True
for key in [k for k in str(request.get("path", "")).split(".") if k]:
    if isinstance(value, dict) and key in value:
        value = value[key]
    elif (
        isinstance(value, list)
        and key.lstrip("-").isdigit()
        and -len(value) <= int(key) < len(value)
    ):
        value = value[int(key)]
    else:
        value, found = None, False
        break
print(json.dumps({"value": value, "found": found}))
