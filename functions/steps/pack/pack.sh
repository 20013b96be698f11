# Wraps everything the step sees (the event and the earlier steps' outputs) in one field.
echo "{\"status\": 200, \"body\": {\"packed_by\": \"docker\", \"input\": $(cat)}}"
