"""A step in Python: reads the step's input document on stdin, greets the event's
`data.name` on stdout. Built into a component by componentize-py (world `step` in
../../wit: exactly wasi:cli/command), no SDK."""

import json
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        doc = json.load(sys.stdin)
        name = doc.get("event", {}).get("data", {}).get("name", "world")
        print(f"greeting {name} from Python", file=sys.stderr)
        out = {
            "status": 200,
            "body": {"message": f"Hello, {name}!", "lang": "python", "attempt": doc["ctx"]["attempt"]},
        }
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
