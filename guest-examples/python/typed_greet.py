"""A typed step in Python (world `typed-step` of ../../wit/step.wit; the build reads the
world from the `weir-world:` line below): `run` gets the step's input document and
returns its output; it logs through `host.log` and sends a `greeting/sent` event through
`host.send-event`. A name that is not a string is a step-error 400 (not retried). Built
by componentize-py, no SDK.
"""
# weir-world: typed-step

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import StepError
from wit_world.imports import host


class Handler(exports.Handler):
    def run(self, input: str) -> str:
        doc = json.loads(input)
        data = doc.get("event", {}).get("data", {})
        name = data.get("name", "world")
        if not isinstance(name, str):
            raise Err(StepError(status=400, message=f"name must be a string, got {name!r}"))
        host.log(host.Level.INFO, f"greeting {name} from typed Python")
        sent = host.send_event(json.dumps({"name": "greeting/sent", "data": {"to": name}}))
        return json.dumps({
            "status": 200,
            "body": {"message": f"Hello, {name}!", "lang": "python-typed", "event": sent},
        })
